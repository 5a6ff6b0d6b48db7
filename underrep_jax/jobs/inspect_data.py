"""Job: measure and show what a SeqIO task or mixture feeds the model."""

import json
import pathlib

from absl import logging
import ml_collections
import numpy as np
import tqdm

import tasks  # noqa: F401  (registers the tasks and mixtures)
from underrep_jax import files
from underrep_jax import show
from underrep_jax.data import corpus_vocab
from underrep_jax.data import vocabularies


def _count(cut: np.ndarray) -> dict:
  return {"count": int(cut.sum()), "fraction": float(cut.mean()) if cut.size else 0.0}


def split_truncation(inputs: np.ndarray, targets: np.ndarray, inputs_length: int,
                     targets_length: int) -> dict:
  """Examples cut when each side has its own length (targets counted with their EOS)."""
  cut_in, cut_tg = inputs > inputs_length, targets > targets_length
  return {"inputs_length": inputs_length, "targets_length": targets_length,
          "inputs": _count(cut_in), "targets": _count(cut_tg), "total": _count(cut_in | cut_tg)}


def budget_truncation(inputs: np.ndarray, targets: np.ndarray, max_length: int) -> dict:
  """Examples cut under one budget shared by prompt and target (cut together on the
  right): `inputs` = the prompt alone overflows (the target is lost), `targets` = the
  target is shortened or lost, `total` = any cut (the same examples as `targets`)."""
  total = inputs + targets > max_length
  return {"max_length": max_length, "inputs": _count(inputs >= max_length),
          "targets": _count(total), "total": _count(total)}


def truncation(inputs: np.ndarray, targets: np.ndarray, max_length: int, inputs_length: int,
               targets_length: int, candidate_inputs_lengths=()) -> dict:
  """Truncation under the shared budget and the configured split, and which split of the
  budget (inputs_length, max_length - inputs_length) cuts the fewest examples."""
  out = {"budget": budget_truncation(inputs, targets, max_length),
         "split": split_truncation(inputs, targets, inputs_length, targets_length)}
  splits = {f"{n}/{max_length - n}": split_truncation(inputs, targets, n, max_length - n)
            for n in candidate_inputs_lengths if 0 < n < max_length}
  if splits:
    out["splits_of_budget"] = splits
    out["least_truncating_split"] = min(
        splits, key=lambda k: (splits[k]["total"]["count"], splits[k]["targets"]["count"]))
  return out


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
  if rows and all("inputs_tokens" in r for r in rows):
    candidates = [int(n) for n in str(data.get("candidate_inputs_lengths", "")).split(",")
                  if n.strip()]
    summary["truncation"] = truncation(
        np.asarray([r["inputs_tokens"] for r in rows]),
        np.asarray([r["targets_tokens"] for r in rows]), data.max_length, data.inputs_length,
        data.targets_length, candidates)
  files.write_json(workdir / "data_summary.json", summary)
  files.write_jsonl(workdir / "examples.jsonl", rows)
  show.print_examples(rows[:data.show])
  print(json.dumps(summary, indent=2))
  logging.info("Wrote %s and %s", workdir / "data_summary.json", workdir / "examples.jsonl")
