"""benchmarks/train_step.py at a tiny size: the step's race, its parts and its profile.

The README's gap analysis quotes `--parts` and `--profile`; this runs the same command
on a 1-layer model, as a subprocess (the script imports its sibling modules)."""

import os
import re
import subprocess
import sys

from conftest import REPO_ROOT


def test_tiny_run_races_the_parts_and_profiles_the_backward_pass():
  result = subprocess.run(
      [sys.executable, "train_step.py", "--hidden=32", "--layers=1", "--heads=2",
       "--vocab=128", "--batch=2", "--length=16", "--runs=1", "--parts", "--profile"],
      cwd=REPO_ROOT / "benchmarks", capture_output=True, text=True, timeout=600, check=False,
      env={k: v for k, v in os.environ.items() if k != "XLA_FLAGS"})  # one CPU device, as run
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.strip().splitlines()
  losses = re.search(r"first-step loss: ours (\S+)\s+torch (\S+)", result.stdout)
  # Same weights, same batch: the first losses agree to float32 rounding of a
  # 128-way log-softmax over 32 tokens.
  assert abs(float(losses.group(1)) - float(losses.group(2))) < 1e-4
  parts = [line.split()[1] for line in lines if line.startswith("part ")]
  assert parts == ["forward", "forward+backward", "optimizer"]
  assert all(float(line.rsplit("ratio=", 1)[1]) > 0 for line in lines if line.startswith("part "))
  kinds = [line for line in lines if line.startswith("profile kind ")]
  assert kinds and all(float(line.split()[-2]) >= 0 for line in kinds)
  assert lines[-1].startswith("ratio=") and float(lines[-1][len("ratio="):]) > 0
