"""X-ICL job: retrieved exemplars, label variants and query alignment, scored by rank.

Pools are filtered to the query task's labels (NusaX's "neutral" has no place in a
binary NusaTranslation prompt). Each (label variant, query alignment) combination is one
prompt variant in the outputs.
"""

import itertools
import pathlib

from absl import logging
import numpy as np

from underrep_jax import parallel
from underrep_jax.data import prompts as prompt_lib
from underrep_jax.data import readers
from underrep_jax.evaluation import model_loading
from underrep_jax.evaluation import report
from underrep_jax.evaluation import retrieval
from underrep_jax.evaluation import scoring
from underrep_jax.evaluation import xicl
from underrep_jax.jobs import evaluate as evaluate_job

CROSS_POOLS = ("eng", "ind")


def _pool(config, language: str, labels) -> tuple[list[dict], str]:
  """(labelled exemplar pool, its language)."""
  if config.pool_language == "mono":
    reader = evaluate_job.CLASSIFICATION_TASKS[config.query_task][0]
    rows, pool_language = reader(language, config.pool_split), language
  elif config.pool_language in CROSS_POOLS:
    reader = evaluate_job.CLASSIFICATION_TASKS[config.pool_task][0]
    rows, pool_language = reader(config.pool_language, config.pool_split), config.pool_language
  else:
    raise ValueError(f"unknown pool_language {config.pool_language!r}; known: eng, ind, mono")
  rows = [r for r in rows if r["label"] in labels]
  if not rows:
    raise ValueError(f"empty exemplar pool for {language!r}: no {config.pool_split} rows with "
                     f"labels {list(labels)}")
  return rows, pool_language


def _alignment_pairs(config, language: str, source: str) -> list[dict]:
  if config.alignment_corpus == "nusatranslation_mt":
    source = "ind"
  return evaluate_job.MT_TASKS[config.alignment_corpus](source, language,
                                                        config.alignment_split)


def run(config, workdir: str) -> None:
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  if config.query_task not in evaluate_job.CLASSIFICATION_TASKS:
    raise ValueError(f"unknown query_task {config.query_task!r}")
  model = model_loading.source(config.model).load(parallel.Topology.from_config(config.mesh))
  scorer = scoring.Scorer(model, batch_size=config.batch_size,
                          max_prompt_tokens=config.max_prompt_tokens)
  _, task_type, verbalizer_name = evaluate_job.CLASSIFICATION_TASKS[config.query_task]
  labels = list(readers.LABELS[config.query_task])
  variants = evaluate_job.split_list(config.label_variants)
  positions = evaluate_job.split_list(config.query_alignment)
  encoder = None
  if config.retrieval == "dense":
    encoder = retrieval.DenseEncoder(config.retrieval_encoder or None)
  explicit_targets = xicl.parse_label_map(config.target_labels)
  records = []
  for lang in evaluate_job.task_languages(config.query_task, config.query_languages):
    reader = evaluate_job.CLASSIFICATION_TASKS[config.query_task][0]
    queries = evaluate_job.head(reader(lang, config.split), config.max_examples)
    if not queries:
      raise ValueError(f"{config.query_task}/{lang}: no {config.split} queries")
    pool, pool_language = _pool(config, lang, labels)
    source_language = pool_language if pool_language in prompt_lib.PROMPT_LANGUAGES \
        else config.prompt_language
    source_words = {l: prompt_lib.VERBALIZERS[verbalizer_name][source_language][l]
                    for l in labels}
    target_words = (xicl.target_label_words(labels, lang, explicit_targets)
                    if any(v in ("target", "align") for v in variants) else source_words)
    texts = [q["text"] for q in queries]
    neighbours = retrieval.Retriever(config.retrieval, [r["text"] for r in pool], config.seed,
                                     encoder).retrieve(texts, config.k)
    aligned = [[] for _ in queries]
    if any(p != "none" for p in positions):
      pairs = _alignment_pairs(config, lang, source_language)
      method = "tfidf" if config.retrieval == "random" else config.retrieval
      hits = retrieval.Retriever(method, [p["target"] for p in pairs], config.seed,
                                 encoder).retrieve(texts, config.alignment_k)
      aligned = [xicl.query_alignment_lines([(pairs[i]["target"], pairs[i]["source"])
                                             for i in idx], config.prompt_language)
                 for idx in hits]
    logging.info("%s: %d queries, pool %s (%d), variants %s x %s", lang, len(queries),
                 pool_language, len(pool), variants, positions)
    for variant, position in itertools.product(variants, positions):
      shot_words, candidate_words, with_alignment = xicl.label_words(variant, source_words,
                                                                     target_words)
      instruction = xicl.instruction(task_type, list(candidate_words.values()),
                                     config.prompt_language)
      alignment_line = (xicl.label_alignment_line(source_words, target_words,
                                                  config.prompt_language)
                        if with_alignment else None)
      prompts = [xicl.build_prompt(
          instruction, [(pool[i]["text"], shot_words[pool[i]["label"]]) for i in idx],
          q["text"], alignment_line, aligned[n] if position != "none" else (),
          position if position != "none" else "before")
          for n, (q, idx) in enumerate(zip(queries, neighbours))]
      name = variant if position == "none" else f"{variant}+{position}"
      answers = [prompt_lib.ANSWER_PREFIX + candidate_words[l] for l in labels]
      scores = scorer.score(prompts, answers, modes=(config.scoring,),
                            desc=f"{lang}/{name}")[config.scoring]
      for q, idx, row_scores, prompt in zip(queries, neighbours, scores, prompts):
        records.append({
            "id": q["id"], "task": config.query_task, "language": lang, "prompt": name,
            "scores": {l: float(s) for l, s in zip(labels, row_scores)},
            "prediction": labels[int(np.argmax(row_scores))], "gold": q["label"],
            "exemplars": [pool[i]["id"] for i in idx], "text": prompt})
  report.write_all(workdir, records, {config.query_task: labels},
                   title=f"X-ICL ({config.retrieval}, k={config.k}, pool "
                   f"{config.pool_language}) of {model.source}",
                   extra={"scoring": config.scoring, "retrieval": config.retrieval,
                          "k": config.k, "pool_language": config.pool_language})
  logging.info("wrote %s", workdir / "report.md")
