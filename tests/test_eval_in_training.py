"""Evaluation during training: the `eval` hook's scores are the evaluation job's."""

import json

import numpy as np
import pytest

import launcher  # tests/launcher.py
from test_instructalign_job import REPO, SMALL


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("ia_eval")
  launcher.run_main(f"--config={REPO / 'configs' / 'instructalign.py'}:tiny",
                    f"--workdir={workdir}", *SMALL, "--config.train.steps=4",
                    "--config.eval.every=2", "--config.eval.max_examples=6",
                    "--config.eval.heldout_batches=2", timeout=900)
  rows = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  return workdir, rows


def test_eval_scalars_are_logged_at_their_steps(trained):
  workdir, rows = trained
  evaluated = {r["step"]: r for r in rows if "eval/heldout_loss" in r}
  assert sorted(evaluated) == [2, 4]
  for row in evaluated.values():
    # data.languages=sun: the seen language's NusaX sentiment, and the mixture's mean
    assert 0.0 <= row["eval/nusax_senti_sun/weighted_f1"] <= 1.0
    assert row["eval/nusax_senti/weighted_f1"] == row["eval/nusax_senti_sun/weighted_f1"]
    assert np.isfinite(row["eval/heldout_loss"]) and row["eval/heldout_loss"] > 0
  assert evaluated[4]["eval/heldout_loss"] != evaluated[2]["eval/heldout_loss"]
  assert any(p.name.startswith("events") for p in (workdir / "tensorboard").rglob("*")) or \
      any("tfevents" in p.name for p in workdir.rglob("*"))


def test_final_eval_equals_the_evaluation_job_on_the_export(trained, tmp_path):
  workdir, rows = trained
  final = [r for r in rows if r["step"] == 4 and "eval/heldout_loss" in r][0]
  launcher.run_main("--config=configs/evaluate.py", f"--workdir={tmp_path}",
                    f"--config.model.path={workdir}", "--config.tasks=nusax_senti",
                    "--config.languages=sun", "--config.split=validation",
                    "--config.max_examples=6", "--config.prompt_languages=eng",
                    "--config.mt_tasks=", "--config.max_prompt_tokens=256")
  metrics = json.loads((tmp_path / "metrics.json").read_text())
  assert metrics["nusax_senti"]["sun"]["weighted_f1"] == pytest.approx(
      final["eval/nusax_senti_sun/weighted_f1"], abs=1e-12)
