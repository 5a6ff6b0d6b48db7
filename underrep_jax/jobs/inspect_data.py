"""Job: measure and show what a SeqIO task or mixture feeds the model."""

import json
import pathlib

from absl import logging
import ml_collections
import numpy as np
import tqdm

import tasks  # noqa: F401  (registers the tasks and mixtures)
from underrep_jax import show
from underrep_jax.data import corpus_vocab
from underrep_jax.data import vocabularies


def run(config: ml_collections.ConfigDict, workdir: str) -> None:
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  data = config.data
  vocab = corpus_vocab.resolve(data.vocab, data.mixture, workdir / "vocab", data.vocab_size)
  vocabularies.set_active(vocab)
  rows = []
  for row in tqdm.tqdm(show.iter_examples(data.mixture, data.split, data.seed),
                       total=data.num_examples, desc=f"reading {data.mixture}", unit="ex"):
    rows.append(row)
    if len(rows) >= data.num_examples:
      break
  summary = {"mixture": data.mixture, "split": data.split, "examples": len(rows),
             "vocabulary": repr(vocab), "vocab_size": int(vocab.vocab_size)}
  for key in ("inputs", "targets"):
    lengths = np.asarray([r[f"{key}_tokens"] for r in rows if f"{key}_tokens" in r])
    if lengths.size:
      summary[f"{key}_tokens"] = {"mean": float(lengths.mean()), "p50": float(np.median(lengths)),
                                  "p95": float(np.percentile(lengths, 95)),
                                  "max": int(lengths.max())}
  (workdir / "data_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
  with (workdir / "examples.jsonl").open("w", encoding="utf-8") as f:
    for row in rows:
      f.write(json.dumps(row, ensure_ascii=False) + "\n")
  show.print_examples(rows[:data.show])
  print(json.dumps(summary, indent=2))
  logging.info("Wrote %s and %s", workdir / "data_summary.json", workdir / "examples.jsonl")
