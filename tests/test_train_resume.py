"""A run killed with SIGKILL at a random moment and restarted ends bit-identical to a clean run."""

import os
import pathlib
import random
import subprocess
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "toy_models.py"
ARGS = ["--steps", "12", "--checkpoint_every", "3", "--mesh", "2,2,1"]


def toy_env(devices: int, cache_dir) -> dict[str, str]:
  """Environment for a toy training subprocess with `devices` CPU devices.

  The persistent compilation cache lets later runs skip compiling what earlier runs did.
  """
  env = dict(os.environ)
  env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p),
             JAX_COMPILATION_CACHE_DIR=str(cache_dir),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
  return env


def run_toy(workdir, env, *extra, timeout=300) -> str:
  proc = subprocess.run([sys.executable, str(SCRIPT), "--workdir", str(workdir), *ARGS, *extra],
                        env=env, capture_output=True, text=True, timeout=timeout)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


def load_params(workdir) -> dict[str, np.ndarray]:
  with np.load(workdir / "final_params.npz") as f:
    return {k: f[k] for k in f.files}


def test_sigkill_at_a_random_moment_then_resume_is_bit_exact(tmp_path):
  env = toy_env(4, tmp_path / "jax_cache")
  clean = tmp_path / "clean"
  assert "done step=12" in run_toy(clean, env)

  killed = tmp_path / "killed"
  # 0.4 s per batch. Checkpoint 3 is complete at the latest when the save of step 6
  # starts, so at least 6 steps (2.4 s) remain when it appears: the kill comes first.
  proc = subprocess.Popen([sys.executable, str(SCRIPT), "--workdir", str(killed), *ARGS,
                           "--delay", "0.4"], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
  try:
    deadline = time.time() + 240
    while not (killed / "checkpoints" / "3").is_dir():
      assert proc.poll() is None, proc.stderr.read()[-3000:]
      assert time.time() < deadline, "no checkpoint appeared"
      time.sleep(0.05)
    wait = random.uniform(0.0, 1.5)
    time.sleep(wait)
    at_kill = sorted(p.name for p in (killed / "checkpoints").iterdir())
    proc.kill()
    proc.wait()
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == -9, f"the run ended before the kill ({wait=:.2f}s)"
  print(f"killed {wait:.2f}s after the first checkpoint; checkpoints dir: {at_kill}")

  assert "done step=12" in run_toy(killed, env)
  want, got = load_params(clean), load_params(killed)
  assert sorted(got) == sorted(want)
  for name in want:
    assert want[name].dtype == got[name].dtype
    np.testing.assert_array_equal(got[name].view(np.uint8), want[name].view(np.uint8), err_msg=name)
