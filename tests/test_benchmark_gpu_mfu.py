"""benchmarks/gpu_mfu.py runs here with --tiny, and says in one line that it needs a GPU."""

import importlib.util

import jax
import pytest

from conftest import REPO_ROOT


def _script():
  spec = importlib.util.spec_from_file_location("gpu_mfu", REPO_ROOT / "benchmarks" / "gpu_mfu.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_tiny_run_prints_tokens_per_second_mfu_and_ratio(capsys):
  assert _script().main(["--tiny", "--steps=2", "--warmup=1", "--peak_tflops=1"]) == 0
  out = capsys.readouterr().out
  assert "tokens/s" in out and "MFU " in out
  ratio = out.strip().splitlines()[-1]
  assert ratio.startswith("ratio=") and float(ratio[len("ratio="):]) > 0


def test_without_a_gpu_the_full_shape_exits_with_one_line(capsys):
  if jax.devices()[0].platform == "gpu":
    pytest.skip("a GPU is present")
  assert _script().main([]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("gpu_mfu: no GPU here")
