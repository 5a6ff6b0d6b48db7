"""Runs the launcher, `python -m underrep_jax.main`, in a subprocess as users do."""

import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def run_main(*args: str, cwd: pathlib.Path = REPO, timeout: int = 600,
             check: bool = True) -> subprocess.CompletedProcess:
  """The finished process; with `check`, asserts exit code 0 and shows stderr if not.

  XLA_FLAGS is cleared: the job runs on one CPU device, not the 8 simulated ones the
  in-process tests use.
  """
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", XLA_FLAGS="")
  result = subprocess.run([sys.executable, "-m", "underrep_jax.main", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env)
  if check:
    assert result.returncode == 0, result.stderr[-4000:]
  return result
