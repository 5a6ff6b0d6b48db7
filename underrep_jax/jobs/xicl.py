"""X-ICL job: retrieved exemplars, label variants and query alignment, scored by rank.

Pools are filtered to the query task's labels (NusaX's "neutral" has no place in a
binary NusaTranslation prompt). Each (label variant, query alignment) combination is one
prompt variant in the outputs. Query alignment draws parallel pairs from a per-language
corpus (`xicl.alignment_source`) and retrieves them by their local-language side, as
the paper did. Retrieval never returns a pool entry whose text is the query itself
(NusaTranslation-MT holds most NusaTranslation sentiment test sentences). report.md
ends with the paper's table layout: variants x languages, with the mean.
"""

import itertools
import pathlib

from absl import logging
import numpy as np

import tasks
from underrep_jax import files
from underrep_jax import parallel
from underrep_jax.data import prompts as prompt_lib
from underrep_jax.data import readers
from underrep_jax.evaluation import model_loading
from underrep_jax.evaluation import report
from underrep_jax.evaluation import retrieval
from underrep_jax.evaluation import scoring
from underrep_jax.evaluation import xicl

CROSS_POOLS = ("eng", "ind")
split_list = tasks.registry.split_names


def _read_splits(reader, language: str, splits: list[str]) -> list[dict]:
  """Rows of every split, in order; ids carry the split when there are several."""
  if len(splits) == 1:
    return reader(language, splits[0])
  return [dict(r, id=f"{split}:{r['id']}") for split in splits for r in reader(language, split)]


def _pool(config, language: str, labels) -> tuple[list[dict], str]:
  """(labelled exemplar pool, its language)."""
  splits = split_list(config.pool_split)
  if config.pool_language == "mono":
    reader = tasks.evaluation.classification_dataset(config.query_task).read
    rows, pool_language = _read_splits(reader, language, splits), language
  elif config.pool_language in CROSS_POOLS:
    reader = tasks.evaluation.classification_dataset(config.pool_task).read
    rows = _read_splits(reader, config.pool_language, splits)
    pool_language = config.pool_language
  else:
    raise ValueError(f"unknown pool_language {config.pool_language!r}; known: eng, ind, mono")
  rows = [r for r in rows if r["label"] in labels]
  if not rows:
    raise ValueError(f"empty exemplar pool for {language!r}: no {config.pool_split} rows with "
                     f"labels {list(labels)}")
  return rows, pool_language


def _retriever(config, spec: str, pool: list[str], encoder) -> retrieval.Retriever:
  return retrieval.Retriever(spec, pool, config.seed, encoder, min_df=config.tfidf_min_df,
                             max_features=config.tfidf_max_features)


def _query_alignment(config, lang: str, source_language: str, texts: list[str],
                     encoder) -> tuple[list[list[str]], str]:
  """(alignment lines per query, corpus): pairs retrieved on the local-language side."""
  corpus = xicl.alignment_source(lang, xicl.parse_map(config.alignment_sources))
  pairs = xicl.alignment_pairs(lang, source_language, corpus,
                               split_list(config.alignment_split))
  hits = _retriever(config, config.alignment_retrieval, [p["target"] for p in pairs],
                    encoder).retrieve(texts, config.alignment_k, skip_identical=True)
  return [xicl.query_alignment_lines([(pairs[i]["target"], pairs[i]["source"]) for i in idx],
                                     lang, config.prompt_language) for idx in hits], corpus


def paper_table(summary: dict, prompt_names: list[str]) -> str:
  """Markdown: one row per prompt variant, one column per language and their mean
  (weighted F1 x100), the layout of the paper's tables."""
  langs = list(summary)
  lines = ["## Per-language table (weighted F1 x100, as in the paper)", "",
           "| variant | " + " | ".join(langs) + " | avg |",
           "|---|" + "---|" * (len(langs) + 1)]
  for name in prompt_names:
    values = [summary[l]["prompts"][name][report.HEADLINE] for l in langs]
    lines.append(f"| {name} | " + " | ".join(f"{100 * v:.1f}" for v in values) +
                 f" | **{100 * float(np.mean(values)):.1f}** |")
  return "\n".join(lines) + "\n"


def run(config, workdir: str) -> None:
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  dataset = tasks.evaluation.classification_dataset(config.query_task)
  variants = split_list(config.label_variants)
  positions = split_list(config.query_alignment)
  for position in positions:
    if position not in xicl.QUERY_ALIGNMENTS:
      raise ValueError(f"query_alignment {position!r}: known {', '.join(xicl.QUERY_ALIGNMENTS)}")
  if config.label_alignment_position not in xicl.POSITIONS:
    raise ValueError(f"label_alignment_position {config.label_alignment_position!r}: known "
                     f"{', '.join(xicl.POSITIONS)}")
  methods = set(retrieval.parse_methods(config.retrieval))
  if any(p != "none" for p in positions):
    methods |= set(retrieval.parse_methods(config.alignment_retrieval))
  model = model_loading.source(config.model).load(parallel.Topology.from_config(config.mesh))
  scorer = scoring.Scorer(model, batch_size=config.batch_size,
                          max_prompt_tokens=config.max_prompt_tokens)
  verbalizer_name = dataset.verbalizer
  labels = list(readers.LABELS[config.query_task])
  encoder = None
  if "dense" in methods:  # one encoder for exemplars and alignment pairs, as the paper
    encoder = retrieval.DenseEncoder(config.retrieval_encoder or None)
  explicit_targets = xicl.parse_map(config.target_labels)
  records = []
  corpora = {}
  langs = tasks.evaluation.dataset_languages(config.query_task, split_list(config.query_languages))
  for lang in langs:
    queries = dataset.read(lang, config.split)
    queries = queries[:config.max_examples] if config.max_examples else queries
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
    neighbours = _retriever(config, config.retrieval, [r["text"] for r in pool],
                            encoder).retrieve(texts, config.k, skip_identical=True)
    aligned = [[] for _ in queries]
    if any(p != "none" for p in positions):
      aligned, corpora[lang] = _query_alignment(config, lang, source_language, texts, encoder)
    logging.info("%s: %d queries, pool %s (%d), variants %s x %s", lang, len(queries),
                 pool_language, len(pool), variants, positions)
    for variant, position in itertools.product(variants, positions):
      shot_words, candidate_words, with_alignment = xicl.label_words(variant, source_words,
                                                                     target_words)
      instruction = xicl.instruction(dataset.task_type, list(candidate_words.values()),
                                     config.prompt_language)
      alignment_line = (xicl.label_alignment_line(source_words, target_words, lang,
                                                  config.prompt_language)
                        if with_alignment else None)
      prompts = [xicl.build_prompt(
          instruction, [(pool[i]["text"], shot_words[pool[i]["label"]]) for i in idx],
          q["text"], alignment_line, config.label_alignment_position,
          aligned[n] if position != "none" else (),
          position if position != "none" else xicl.PAPER_POSITION)
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
  result = report.write_all(
      workdir, records, {config.query_task: labels},
      title=f"X-ICL ({config.retrieval}, k={config.k}, pool {config.pool_language} "
      f"{config.pool_split}) of {model.source}",
      extra={"scoring": config.scoring, "retrieval": config.retrieval,
             "retrieval_encoder": config.retrieval_encoder, "k": config.k,
             "pool_language": config.pool_language, "pool_split": config.pool_split,
             "label_alignment_position": config.label_alignment_position,
             "alignment_retrieval": config.alignment_retrieval, "alignment_sources": corpora})
  names = [v if p == "none" else f"{v}+{p}" for v, p in itertools.product(variants, positions)]
  report_md = workdir / "report.md"
  files.atomic_write_text(report_md, report_md.read_text(encoding="utf-8") + "\n" +
                          paper_table(result[config.query_task], names))
  logging.info("wrote %s", workdir / "report.md")
