"""Metrics, computed by the libraries made for them: scikit-learn and sacrebleu.

The functions take (targets, predictions) lists, which is also the signature SeqIO expects
of a task's `metric_fns`.
"""

from collections.abc import Sequence

import sacrebleu
from sklearn import metrics as skm


def _strip(items: Sequence[str]) -> list[str]:
  return [str(x).strip() for x in items]


def classification_metrics(targets: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
  """Accuracy, macro F1 and weighted F1 (the headline metric of the thesis)."""
  if len(targets) != len(predictions):
    raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions")
  if not targets:
    raise ValueError("no examples to score")
  y_true, y_pred = _strip(targets), _strip(predictions)
  return {
      "accuracy": float(skm.accuracy_score(y_true, y_pred)),
      "macro_f1": float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0)),
      "weighted_f1": float(skm.f1_score(y_true, y_pred, average="weighted", zero_division=0)),
  }


def translation_metrics(targets: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
  """Corpus chrF++ (chrF with word bigrams) and BLEU, on sacrebleu's 0-100 scale."""
  if len(targets) != len(predictions):
    raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions")
  refs, hyps = [_strip(targets)], _strip(predictions)
  return {
      "chrf++": float(sacrebleu.corpus_chrf(hyps, refs, word_order=2).score),
      "bleu": float(sacrebleu.corpus_bleu(hyps, refs).score),
  }
