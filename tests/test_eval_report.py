"""Metrics, baselines, output files, model resolution and the comparison command."""

import json

import numpy as np
import pytest
import sacrebleu
from sklearn import metrics as skm

from underrep_jax import errors
from underrep_jax.evaluation import compare
from underrep_jax.evaluation import metrics as metric_lib
from underrep_jax.evaluation import model_loading
from underrep_jax.evaluation import report

GOLD = ["positive", "negative", "neutral", "positive", "positive", "negative"]
PRED = ["positive", "neutral", "neutral", "negative", "positive", "negative"]
LABELS = ["negative", "neutral", "positive"]


def _records(task="nusax_senti"):
  out = []
  for lang in ("ind", "sun", "mad"):
    for prompt in ("eng0", "ind0"):
      for i, (g, p) in enumerate(zip(GOLD, PRED)):
        out.append({"id": str(i), "task": task, "language": lang, "prompt": prompt,
                    "scores": {l: float(l == p) for l in LABELS}, "prediction": p, "gold": g})
  return out


def test_metrics_equal_sklearn_and_sacrebleu():
  m = metric_lib.classification_metrics(GOLD, PRED)
  assert m["accuracy"] == skm.accuracy_score(GOLD, PRED)
  assert m["macro_f1"] == skm.f1_score(GOLD, PRED, average="macro")
  assert m["weighted_f1"] == skm.f1_score(GOLD, PRED, average="weighted")
  refs, hyps = ["saya makan nasi", "dia pergi"], ["saya makan", "dia pergi ke pasar"]
  t = metric_lib.translation_metrics(refs, hyps)
  assert t["chrf++"] == sacrebleu.corpus_chrf(hyps, [refs], word_order=2).score
  assert t["bleu"] == sacrebleu.corpus_bleu(hyps, [refs]).score


def test_fast_confusion_metrics_equal_sklearn():
  rng = np.random.default_rng(0)
  for _ in range(20):
    gold, pred = rng.integers(0, 4, 30), rng.integers(0, 4, 30)
    fast = report.confusion_metrics(gold, pred, 4)
    slow = metric_lib.classification_metrics([str(g) for g in gold], [str(p) for p in pred])
    for key, value in slow.items():
      assert fast[key] == pytest.approx(value, abs=1e-12)


def test_baselines():
  b = report.baselines(GOLD, LABELS)
  assert b["majority"]["accuracy"] == pytest.approx(0.5)  # always "positive"
  assert b["random"]["accuracy"] == pytest.approx(1 / 3, abs=0.05)


def test_outputs_per_language_prompt_and_group(tmp_path):
  translation = {"nusax_mt": {"ind-sun": {"chrf++": 30.0, "bleu": 5.0}}}
  result = report.write_all(tmp_path, _records(), {"nusax_senti": LABELS}, translation)
  assert {p.name for p in tmp_path.iterdir()} == {"predictions.jsonl", "metrics.json",
                                                  "report.md", "nusax_senti.png",
                                                  "nusax_mt.png"}
  metrics = json.loads((tmp_path / "metrics.json").read_text())
  assert metrics == json.loads(json.dumps(result))
  sun = metrics["nusax_senti"]["sun"]
  expected = metric_lib.classification_metrics(GOLD, PRED)
  assert sun["prompts"]["eng0"] == expected
  assert sun["weighted_f1"] == pytest.approx(expected["weighted_f1"])
  assert set(metrics["group_means"]["nusax_senti"]) == {"pretrained", "seen", "unseen"}
  assert metrics["nusax_mt"]["ind-sun"]["chrf++"] == 30.0
  lines = (tmp_path / "predictions.jsonl").read_text().splitlines()
  assert len(lines) == 36 and json.loads(lines[0])["prediction"] == "positive"
  text = (tmp_path / "report.md").read_text()
  assert "| sun | seen |" in text and "| mad | unseen |" in text and "| ind-sun |" in text
  assert "| unseen | " in text  # the group means table


def test_compare_two_workdirs(tmp_path):
  a, b = tmp_path / "a", tmp_path / "b"
  report.write_all(a, _records(), {"nusax_senti": LABELS})
  report.write_all(b, _records(), {"nusax_senti": LABELS})
  assert compare.main([str(a), str(b), f"--out={tmp_path / 'cmp'}"]) == 0
  table = (tmp_path / "cmp" / "comparison.md").read_text()
  assert "| nusax_senti | sun |" in table and (tmp_path / "cmp" / "comparison.png").is_file()
  assert compare.main([str(tmp_path / "missing"), f"--out={tmp_path / 'cmp'}"]) == 2


def test_model_resolution_and_missing_tokenizer(tmp_path):
  from underrep_jax.models import testing as model_testing
  export = tmp_path / "run" / "export"
  model_testing.save_tiny("bloom", export)
  with pytest.raises(errors.ModelError, match="no tokenizer.json"):
    model_loading.resolve(tmp_path / "run")
  (export / "tokenizer.json").write_text("{}")
  assert model_loading.resolve(tmp_path / "run") == export
  assert model_loading.resolve(export) == export
  with pytest.raises(errors.ModelError, match="no config.json"):
    model_loading.resolve(tmp_path)
  with pytest.raises(errors.ModelError, match="not a directory"):
    model_loading.resolve(tmp_path / "nope")
