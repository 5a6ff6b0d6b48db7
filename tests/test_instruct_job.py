"""The general instruction-tuning job on a user's own SeqIO mixture, registered by a module
named on the command line (`--config.task_modules`), as the README shows."""

import json
import os
import textwrap

import numpy as np
import pytest

import launcher  # tests/launcher.py

CONFIG = launcher.REPO / "configs" / "instruct.py"
# bytes: no vocabulary to train; short sequences and a batch of 4 keep a step cheap.
SMALL = ["--config.data.vocab=bytes", "--config.data.inputs_length=48",
         "--config.data.targets_length=24", "--config.train.batch_size=4",
         "--config.train.checkpoint_every=3", "--config.train.log_every=1"]
ANSWERS = ("yes", "no", "maybe")

TASK_MODULE = '''
"""Registers my_task (a JSONL of inputs/targets beside this file) and my_mix over it."""
import pathlib

import seqio
from underrep_jax.data import seqio_pipeline as sp

seqio.TaskRegistry.add(
    "my_task",
    source=sp.jsonl_source(pathlib.Path(__file__).with_name("my_data.jsonl")),
    preprocessors=sp.tokenize_preprocessors(),
    output_features=sp.OUTPUT_FEATURES)
seqio.MixtureRegistry.add("my_mix", [("my_task", 1.0)])
'''


@pytest.fixture(scope="module")
def user_tasks(tmp_path_factory):
  """A directory holding the user's module `my_tasks` and its data."""
  root = tmp_path_factory.mktemp("user_tasks")
  (root / "my_tasks.py").write_text(textwrap.dedent(TASK_MODULE))
  with (root / "my_data.jsonl").open("w") as f:
    for i in range(40):
      f.write(json.dumps({"inputs": f"Question {i}: is {i} even?",
                          "targets": ANSWERS[i % 3]}) + "\n")
  return root


def _run(user_tasks, workdir, *args, check=True):
  """Runs from the workdir's parent (not the repository) with the module on PYTHONPATH."""
  pythonpath = os.pathsep.join(p for p in (str(user_tasks), os.environ.get("PYTHONPATH"))
                               if p)
  old = os.environ.get("PYTHONPATH")
  os.environ["PYTHONPATH"] = pythonpath
  try:
    return launcher.run_main(f"--config={CONFIG}", f"--workdir={workdir.name}", *SMALL,
                             *args, cwd=workdir.parent, check=check)
  finally:
    if old is None:
      os.environ.pop("PYTHONPATH")
    else:
      os.environ["PYTHONPATH"] = old


def _one_error_line(result, *words):
  """Exit code 2, exactly one configuration error line naming `words`, no traceback."""
  assert result.returncode == 2, result.stderr[-3000:]
  lines = [l for l in result.stderr.splitlines() if " error: " in l]
  assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
  assert lines[0].startswith("underrep_jax.main: configuration error: "), lines[0]
  for word in words:
    assert word in lines[0], lines[0]
  return lines[0]


def test_trains_checkpoints_and_exports_a_user_mixture(user_tasks, tmp_path):
  from underrep_jax.models import hf
  workdir = tmp_path / "run"
  result = _run(user_tasks, workdir, "--config.task_modules=my_tasks",
                "--config.data.mixture=my_mix", "--config.train.steps=3",
                "--config.export_every=2")
  # The export hook ran at step 2 (and only there: 3 is not a multiple of 2), then the
  # final export replaced it.
  output = result.stdout + result.stderr
  assert f"step 2: exported to {workdir / 'export'}" in output, output[-3000:]
  assert "step 3: exported" not in output and not (workdir / "export.partial").exists()
  metrics = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [m["step"] for m in metrics] == [1, 2, 3]
  assert all(np.isfinite(m["loss"]) for m in metrics)
  assert [p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()] == ["3"]
  summary = json.loads((workdir / "instruct_summary.json").read_text())
  assert summary["mixture"] == "my_mix" and summary["step"] == 3
  assert summary["export"] == str(workdir / "export")
  model = hf.load(workdir / "export")
  ids = np.array([list(b"Question 1: is 1 even?")], dtype=np.int32) + 3  # bytes vocab ids
  logits = np.asarray(model.logits(ids, np.ones_like(ids)))
  assert logits.shape == (1, ids.shape[1], 256 + 3) and np.isfinite(logits).all()


def test_reads_the_user_data(user_tasks, tmp_path):
  """A bad line in the user's JSONL stops the run with the file and line: the job
  trained on the registered mixture's data, not on something else."""
  bad = tmp_path / "bad_tasks"
  bad.mkdir()
  (bad / "my_tasks.py").write_text((user_tasks / "my_tasks.py").read_text())
  (bad / "my_data.jsonl").write_text('{"inputs": "a", "targets": "b"}\n{"inputs": "a"}\n')
  result = _run(bad, tmp_path / "run", "--config.task_modules=my_tasks",
                "--config.data.mixture=my_mix", "--config.train.steps=1", check=False)
  assert result.returncode == 1, result.stderr[-3000:]
  assert f"{bad / 'my_data.jsonl'}, line 2, field 'targets'" in result.stderr


def test_an_unknown_mixture_is_one_line_with_close_names(user_tasks, tmp_path):
  line = _one_error_line(_run(user_tasks, tmp_path / "run", "--config.task_modules=my_tasks",
                              "--config.data.mixture=my_mixx", check=False),
                         "config.data.mixture='my_mixx'", "my_mix")
  assert "close registered names: my_mix" in line
  assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_module_that_does_not_import_is_one_line(user_tasks, tmp_path):
  _one_error_line(_run(user_tasks, tmp_path / "run", "--config.task_modules=my_tasks,no_such_tasks",
                       "--config.data.mixture=my_mix", check=False),
                  "config.task_modules", "'no_such_tasks'", "ModuleNotFoundError")


def test_an_empty_mixture_stops_before_any_work(user_tasks, tmp_path):
  _one_error_line(_run(user_tasks, tmp_path / "run", check=False), "config.data.mixture")
  assert not (tmp_path / "run" / "vocab").exists()


def test_instructalign_trains_on_a_named_mixture(user_tasks, tmp_path):
  """`data.mixture` overrides InstructAlign's objective fields; the rest is its job."""
  workdir = tmp_path / "ia"
  pythonpath = os.environ.get("PYTHONPATH")
  os.environ["PYTHONPATH"] = str(user_tasks)
  try:
    launcher.run_main(f"--config={launcher.REPO / 'configs' / 'instructalign.py'}:tiny",
                      f"--workdir={workdir.name}", *SMALL, "--config.export=False",
                      "--config.task_modules=my_tasks", "--config.data.mixture=my_mix",
                      "--config.train.steps=1", cwd=workdir.parent)
  finally:
    if pythonpath is None:
      os.environ.pop("PYTHONPATH")
    else:
      os.environ["PYTHONPATH"] = pythonpath
  summary = json.loads((workdir / "instructalign_summary.json").read_text())
  assert summary["mixture"] == "my_mix" and summary["step"] == 1 and "export" not in summary
