"""Two processes (4 CPU devices each, gloo collectives) train like one process with 8."""

import json
import sys

import numpy as np

import launcher  # tests/launcher.py
import toy_models
from tolerances import float32_tol  # tests/tolerances.py
from test_train_resume import SCRIPT, load_params, toy_env

ARGS = ["--steps", "3", "--checkpoint_every", "0", "--mesh", "8,1,1", "--init", "numpy"]


def _losses(workdir) -> list[float]:
  return [json.loads(line)["loss"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_match_one_process(tmp_path):
  cache = tmp_path / "jax_cache"
  outputs = launcher.run_processes(
      [sys.executable, str(SCRIPT), "--workdir", str(tmp_path / "two"), *ARGS, "--distributed"],
      [toy_env(4, cache), toy_env(4, cache)], timeout=300)
  for out, _ in outputs:
    assert "done step=3" in out

  # The one-process reference runs in this process (8 devices, from conftest).
  one = tmp_path / "one"
  assert toy_models.main(["--workdir", str(one), *ARGS]) == 0
  assert len(_losses(one)) == 3
  # Cross-process all-reduces sum in another order: losses over 8 * 16 tokens, by step 3
  # through 3 forward+backward passes (depth 6): 8e-5 relative; a process that sees only
  # half the batch moves them by ~3e-3.
  np.testing.assert_allclose(_losses(tmp_path / "two"), _losses(one),
                             rtol=float32_tol(8 * 16, depth=6))
  toy_models.assert_params_close(load_params(tmp_path / "two"), load_params(one))
