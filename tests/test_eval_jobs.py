"""Both evaluation jobs end to end on a tiny exported model, then the comparison."""

import json
import subprocess
import sys

import pytest

import launcher  # tests/launcher.py

from underrep_jax.evaluation import testing

REPO = launcher.REPO


def _main(config, workdir, model, *args):
  launcher.run_main(f"--config={config}", f"--workdir={workdir}", f"--config.model.path={model}",
                    *args)


@pytest.fixture(scope="module")
def trained_workdir(tmp_path_factory):
  """A training-run layout: the model lives in WORKDIR/export."""
  workdir = tmp_path_factory.mktemp("run")
  testing.save_tiny_lm(workdir / "export")
  return workdir


def _predictions(workdir):
  return [json.loads(l) for l in (workdir / "predictions.jsonl").read_text().splitlines()]


def test_evaluate_then_xicl_then_compare(trained_workdir, tmp_path):
  evaluate = tmp_path / "eval"
  _main("configs/evaluate.py:tiny", evaluate, trained_workdir, "--config.max_examples=4",
        "--config.languages=sun,mad", "--config.mt_max_examples=2",
        "--config.max_new_tokens=4", "--config.batch_size=4")
  records = _predictions(evaluate)
  assert len(records) == 2 * 6 * 4  # languages x prompts x examples
  assert set(records[0]) == {"id", "task", "language", "prompt", "prompt_language", "scores",
                             "prediction", "gold"}
  assert set(records[0]["scores"]) == {"negative", "neutral", "positive"}
  metrics = json.loads((evaluate / "metrics.json").read_text())
  assert set(metrics["nusax_senti"]) == {"sun", "mad"}
  assert set(metrics["nusax_senti"]["sun"]["prompts"]) == {"eng0", "eng1", "eng2", "ind0",
                                                           "ind1", "ind2"}
  assert set(metrics["group_means"]["nusax_senti"]) == {"seen", "unseen"}
  assert set(metrics["nusax_mt"]) == {"ind-sun", "sun-ind"}
  assert (evaluate / "nusax_senti.png").stat().st_size > 0
  assert "| sun | seen |" in (evaluate / "report.md").read_text()

  x = tmp_path / "xicl"
  _main("configs/xicl.py:tiny", x, trained_workdir / "export", "--config.max_examples=3",
        "--config.query_languages=sun", "--config.label_variants=source,align",
        "--config.query_alignment=none,after")
  records = _predictions(x)
  assert {r["prompt"] for r in records} == {"source", "source+after", "align", "align+after"}
  assert all(len(r["exemplars"]) == 3 for r in records)
  aligned = next(r for r in records if r["prompt"] == "align+after")["text"].splitlines()
  # Instruction, 3 exemplars, then (after them, the paper's default) 3 query-alignment
  # lines naming the language, the label-alignment line, and the query.
  assert aligned[-1].endswith("=>") and all(" => " in l for l in aligned[1:4])
  assert all(l.startswith('The Sundanese sentence "') for l in aligned[4:7])
  assert aligned[7].startswith("Labels in Sundanese: negative means ")
  metrics = json.loads((x / "metrics.json").read_text())
  assert set(metrics["nusatranslation_senti"]) == {"sun"}

  result = subprocess.run([sys.executable, "-m", "underrep_jax.evaluation.compare",
                           str(evaluate), str(x), f"--out={tmp_path / 'cmp'}"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert (tmp_path / "cmp" / "comparison.png").is_file()


def test_missing_tokenizer_is_a_clear_error(tmp_path):
  from underrep_jax.models import testing as model_testing
  model_testing.save_tiny("bloom", tmp_path / "m")
  result = launcher.run_main("--config=configs/evaluate.py:tiny", f"--workdir={tmp_path / 'w'}",
                             f"--config.model.path={tmp_path / 'm'}", timeout=300, check=False)
  assert result.returncode == 1 and "Traceback" not in result.stderr
  assert "model error:" in result.stderr and "no tokenizer.json" in result.stderr
