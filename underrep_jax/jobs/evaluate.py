"""Zero-shot evaluation job: rank classification over 6 prompts, and MT by generation.

Reads the test sets with `data.readers`, scores every label continuation with
`evaluation.scoring` (prompt once per example, labels from its KV cache), generates
translations with `evaluation.generation`, and writes the outputs of
`evaluation.report` into the workdir.
"""

import pathlib

from absl import logging
import numpy as np

from underrep_jax import files
from underrep_jax import parallel
from underrep_jax.data import prompts as prompt_lib
from underrep_jax.data import readers
from underrep_jax.evaluation import generation
from underrep_jax.evaluation import metrics as metric_lib
from underrep_jax.evaluation import model_loading
from underrep_jax.evaluation import report
from underrep_jax.evaluation import scoring

# task -> (reader(lang, split), prompt task type, verbalizer name)
CLASSIFICATION_TASKS = {
    "nusax_senti": (readers.nusax_sentiment, prompt_lib.SENTIMENT, "sentiment"),
    "nusatranslation_senti": (readers.nusatranslation_sentiment, prompt_lib.SENTIMENT,
                              "sentiment"),
    "nusaparagraph_emot": (lambda l, s: readers.nusaparagraph("emot", l, s),
                           prompt_lib.EMOTION, "emotion"),
    "nusaparagraph_topic": (lambda l, s: readers.nusaparagraph("topic", l, s),
                            prompt_lib.TOPIC, "nusaparagraph_topic"),
    "sib200_topic": (readers.sib200_topic, prompt_lib.TOPIC, "sib200_topic"),
}
MT_TASKS = {"nusax_mt": readers.nusax_mt_pairs,
            "nusatranslation_mt": readers.nusatranslation_mt_pairs}


def split_list(text: str) -> list[str]:
  return [s.strip() for s in text.split(",") if s.strip()]


def task_languages(dataset: str, requested: str) -> list[str]:
  """The requested languages that `dataset` has (all of them when none are requested)."""
  available = readers.available_languages(dataset)
  if not requested:
    return available
  wanted = split_list(requested)
  skipped = [lang for lang in wanted if lang not in available]
  if skipped:
    logging.warning("%s has no data for %s; skipped", dataset, ", ".join(skipped))
  kept = [lang for lang in wanted if lang in available]
  if not kept:  # an empty report would look like a result
    from underrep_jax.errors import ConfigError
    raise ConfigError(f"{dataset} has no data for the requested languages {requested!r}; "
                      f"it has: {', '.join(available)}")
  return kept


def head(rows: list, n: int) -> list:
  return rows[:n] if n else rows


def score_rows(scorer: scoring.Scorer, task: str, rows: list[dict], prompt_variants,
               mode: str) -> list[dict]:
  """One prediction record per example and prompt variant."""
  records = []
  for prompt in prompt_variants:
    labels = list(prompt.verbalizer)
    texts = [prompt.fill(r["text"], r["language"]) for r in rows]
    scores = scorer.score(texts, [prompt.answer(l) for l in labels], modes=(mode,),
                          desc=f"{task}/{rows[0]['language']}/{prompt.name}")[mode]
    for row, row_scores in zip(rows, scores):
      records.append({
          "id": row["id"], "task": task, "language": row["language"], "prompt": prompt.name,
          "prompt_language": prompt.prompt_language,
          "scores": {l: float(s) for l, s in zip(labels, row_scores)},
          "prediction": labels[int(np.argmax(row_scores))], "gold": row["label"]})
  return records


def run_classification(config, model) -> tuple[list[dict], dict]:
  scorer = scoring.Scorer(model, batch_size=config.batch_size,
                          max_prompt_tokens=config.max_prompt_tokens)
  records, labels_by_task = [], {}
  for task in split_list(config.tasks):
    if task not in CLASSIFICATION_TASKS:
      raise ValueError(f"unknown task {task!r} in config.tasks; known: "
                       f"{', '.join(CLASSIFICATION_TASKS)}")
    reader, task_type, verbalizer = CLASSIFICATION_TASKS[task]
    labels_by_task[task] = list(readers.LABELS[task])
    variants = prompt_lib.classification_prompts(
        task_type, verbalizer, labels=readers.LABELS[task],
        prompt_languages=tuple(split_list(config.prompt_languages)))
    for lang in task_languages(task, config.languages):
      rows = head(reader(lang, config.split), config.max_examples)
      if not rows:
        raise ValueError(f"{task}/{lang}: no {config.split} examples to evaluate")
      logging.info("%s/%s: %d examples x %d prompts", task, lang, len(rows), len(variants))
      records += score_rows(scorer, task, rows, variants, config.scoring)
  return records, labels_by_task


def run_translation(config, model, workdir: pathlib.Path) -> dict:
  tasks = split_list(config.mt_tasks)
  if not tasks:
    return {}
  generator = generation.Generator(
      model, batch_size=config.batch_size, max_new_tokens=config.max_new_tokens,
      num_beams=config.num_beams, greedy=config.num_beams == 1,
      max_prompt_tokens=config.max_prompt_tokens)
  out = {}
  rows = []
  for task in tasks:
    if task not in MT_TASKS:
      raise ValueError(f"unknown MT task {task!r}; known: {', '.join(MT_TASKS)}")
    out[task] = {}
    for lang in task_languages(task, config.mt_languages):
      if lang == config.mt_pivot:
        continue
      for src, tgt in ((config.mt_pivot, lang), (lang, config.mt_pivot)):
        pairs = head(MT_TASKS[task](src, tgt, config.split), config.mt_max_examples)
        if not pairs:
          raise ValueError(f"{task}/{src}-{tgt}: no {config.split} pairs to translate")
        prompts = [prompt_lib.fill_mt_prompt(p["source"], src, tgt,
                                             config.mt_prompt_language) for p in pairs]
        hyps = generator.generate(prompts, desc=f"{task}/{src}-{tgt}")
        out[task][f"{src}-{tgt}"] = metric_lib.translation_metrics(
            [p["target"] for p in pairs], hyps)
        rows.extend({"id": p["id"], "task": task, "direction": f"{src}-{tgt}",
                     "prediction": h, "gold": p["target"]} for p, h in zip(pairs, hyps))
  files.write_jsonl(workdir / "translations.jsonl", rows)
  return out


def run(config, workdir: str) -> None:
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  model = model_loading.source(config.model).load(parallel.Topology.from_config(config.mesh))
  records, labels_by_task = run_classification(config, model)
  translation = run_translation(config, model, workdir)
  report.write_all(workdir, records, labels_by_task, translation,
                   title=f"Zero-shot evaluation of {model.source}",
                   extra={"scoring": config.scoring})
  logging.info("wrote %s", workdir / "report.md")
