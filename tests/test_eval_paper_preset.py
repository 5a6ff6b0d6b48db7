"""The evaluation `paper` preset: the settings the job uses, and the English-prompt mean."""

import importlib.util
import json

import numpy as np
from sklearn import metrics as skm

from underrep_jax.evaluation import report
from underrep_jax.jobs import evaluate as job

import launcher  # tests/launcher.py

LABELS = ["negative", "neutral", "positive"]


def _config(preset: str):
  spec = importlib.util.spec_from_file_location("evaluate_config",
                                                launcher.REPO / "configs" / "evaluate.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(preset)


class RecordingScorer:
  """Stands in for scoring.Scorer: records what the job asks for, prefers one label."""
  instances = []

  def __init__(self, model, batch_size=16, max_prompt_tokens=512):
    self.max_prompt_tokens = max_prompt_tokens
    self.calls = []
    RecordingScorer.instances.append(self)

  def score(self, prompts, answers, modes, desc=""):
    self.calls.append((tuple(modes), prompts, answers))
    out = np.zeros((len(prompts), len(answers)))
    out[:, len(self.calls) % len(answers)] = 1.0  # each prompt variant predicts its own label
    return {modes[0]: out}


def test_paper_preset_is_what_the_job_scores_with(monkeypatch):
  config = _config("paper")
  assert (config.scoring, config.max_prompt_tokens) == ("whole", 1024)
  assert config.prompt_languages == "eng,ind"
  assert "nusax_senti" in config.tasks and config.max_examples == 0
  config.tasks, config.languages, config.max_examples = "nusax_senti", "sun", 3
  monkeypatch.setattr(job.scoring, "Scorer", RecordingScorer)
  RecordingScorer.instances.clear()
  records, _ = job.run_classification(config, model=None, selection=job.select(config))
  (scorer,) = RecordingScorer.instances
  assert scorer.max_prompt_tokens == 1024
  assert {modes for modes, _, _ in scorer.calls} == {("whole",)}
  assert len(scorer.calls) == 6  # three English and three Indonesian prompts
  assert sorted(r["prompt_language"] for r in records[::3]) == ["eng"] * 3 + ["ind"] * 3


def _records() -> list[dict]:
  """Six prompts on one language; each prompt predicts differently."""
  rng = np.random.default_rng(0)
  gold = list(rng.choice(LABELS, 30))
  out = []
  for language in ("eng", "ind"):
    for index in range(3):
      predictions = rng.choice(LABELS, 30)
      for i, (g, p) in enumerate(zip(gold, predictions)):
        out.append({"id": str(i), "task": "nusax_senti", "language": "sun",
                    "prompt": f"{language}{index}", "prompt_language": language,
                    "scores": {}, "prediction": str(p), "gold": str(g)})
  return out


def test_english_prompt_mean_is_over_exactly_the_english_prompts(tmp_path):
  records = _records()
  result = report.write_all(tmp_path, records, {"nusax_senti": LABELS})
  entry = result["nusax_senti"]["sun"]

  def weighted_f1(language):
    chosen = [r for r in records if r["prompt_language"] == language]
    by_prompt = {}
    for r in chosen:
      by_prompt.setdefault(r["prompt"], []).append(r)
    return [skm.f1_score([r["gold"] for r in rows], [r["prediction"] for r in rows],
                         average="weighted") for rows in by_prompt.values()]

  english, indonesian = weighted_f1("eng"), weighted_f1("ind")
  np.testing.assert_allclose(entry["mean_eng"]["weighted_f1"], np.mean(english), rtol=1e-12)
  np.testing.assert_allclose(entry["mean_ind"]["weighted_f1"], np.mean(indonesian), rtol=1e-12)
  np.testing.assert_allclose(entry["weighted_f1"], np.mean(english + indonesian), rtol=1e-12)
  assert entry["mean_eng"]["weighted_f1"] != entry["weighted_f1"]
  group = result["group_means"]["nusax_senti"]["seen"]
  assert group["mean_eng"]["weighted_f1"] == entry["mean_eng"]["weighted_f1"]

  saved = json.loads((tmp_path / "metrics.json").read_text())
  assert saved["nusax_senti"]["sun"]["mean_eng"] == entry["mean_eng"]
  markdown = (tmp_path / "report.md").read_text()
  assert "mean eng prompts" in markdown
  assert f"{100 * entry['mean_eng']['weighted_f1']:.1f}" in markdown


def test_records_without_a_prompt_language_get_no_language_means(tmp_path):
  records = [dict(r, prompt=r["prompt"].replace("eng", "source")) for r in _records()]
  for r in records:
    del r["prompt_language"]  # e.g. X-ICL records, whose prompts are not languages
  entry = report.write_all(tmp_path, records, {"nusax_senti": LABELS})["nusax_senti"]["sun"]
  assert not [k for k in entry if k.startswith("mean_")]
