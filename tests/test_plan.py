"""`python -m underrep_jax.plan`: the job's train step compiled for a TPU slice from this
CPU host, its FLOPs against the model's count, and the does-not-fit verdict as one line.

Run as users do, in subprocesses: plan picks its own platforms (the in-process tests'
JAX_PLATFORMS=cpu and 8 simulated devices would not reach libtpu).
"""

import json
import os
import re
import subprocess
import sys

import pytest

from underrep_jax import plan

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_libtpu = pytest.mark.skipif(not plan.installed("libtpu"),
                                  reason='libtpu missing: pip install -e ".[test]"')
HAS_CUDA_PLUGIN = plan.installed("jax_plugins.xla_cuda12")

# A 2-layer from-scratch BLOOM (no data, no vocabulary training: plan reads neither),
# wide and short enough that matmuls are nearly all of its FLOPs (MaxText's count leaves
# out norms, activations, softmax and the optimizer; here they are about 1%).
SMALL = ("--config=configs/instructalign.py:tiny", "--config.model.scratch.hidden_size=1024",
         "--config.model.scratch.num_heads=16", "--config.data.inputs_length=16",
         "--config.data.targets_length=16", "--config.train.batch_size=32",
         "--config.mesh.shape=(1,-1,1)")


# A 2-layer BERT-family encoder described by its config.json alone (plan reads no
# weights), wide enough that matmuls are nearly all of its FLOPs and with the 2048
# positions of a nomic-bert-like encoder, so the paper's λ=5 (1024 tokens) fits it.
SMALL_ENCODER = {"model_type": "bert", "vocab_size": 1000, "hidden_size": 1024,
                 "num_hidden_layers": 2, "num_attention_heads": 16,
                 "intermediate_size": 4096, "max_position_embeddings": 2048}


def encoder_dir(tmp_path, **fields) -> str:
  directory = tmp_path / "encoder"
  directory.mkdir()
  (directory / "config.json").write_text(json.dumps({**SMALL_ENCODER, **fields}))
  return str(directory)


def run_plan(*args: str, timeout: int = 900, pythonpath: str | None = None
             ) -> subprocess.CompletedProcess:
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", XLA_FLAGS="")
  if pythonpath is not None:
    env["PYTHONPATH"] = pythonpath
  return subprocess.run([sys.executable, "-m", "underrep_jax.plan", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=timeout, env=env)


@needs_libtpu
@pytest.mark.parametrize("loops", [(), ("--config.model.scan_layers=True",
                                        "--config.train.microbatches=2")])
def test_compiles_for_a_tpu_slice_and_counts_the_model_flops(loops):
  """Without remat the step's FLOPs (XLA's, all chips) are the model's count within 2%,
  also where XLA would count a layer scan's or a microbatch scan's body once."""
  result = run_plan(*SMALL, *loops, "--target=v5e-8")
  assert result.returncode == 0, result.stdout + result.stderr[-3000:]
  out = result.stdout
  assert "8 x TPU v5 lite" in out and "(1, 8, 1)" in out
  assert re.search(r"peak per chip: [\d.]+ GiB of 16.00 GiB HBM", out)
  ratio = float(re.search(r"XLA/model ([\d.]+)", out).group(1))
  assert abs(ratio - 1) < 0.02, out
  assert out.strip().splitlines()[-1] == "verdict: fits on v5e-8"
  assert "Traceback" not in result.stderr


@needs_libtpu
def test_a_step_that_overflows_the_chip_is_a_one_line_verdict():
  """A 1M-token vocabulary at width 2048, replicated on every v5e chip: the compiler's
  out-of-memory error becomes the verdict line, exit code 3 (plan.EXIT_DOES_NOT_FIT)."""
  result = run_plan("--config=configs/instructalign.py:tiny", "--target=v5e-8",
                    "--config.data.vocab_size=1000000",
                    "--config.model.scratch.hidden_size=2048", "--search_seconds=0")
  assert result.returncode == plan.EXIT_DOES_NOT_FIT, result.stderr[-3000:]
  verdicts = [l for l in result.stdout.splitlines() if l.startswith("verdict:")]
  assert len(verdicts) == 1
  assert re.fullmatch(r"verdict: does not fit on v5e-8: the compiler needs [\d.]+G of the "
                      r"[\d.]+G HBM a chip has \(RESOURCE_EXHAUSTED at compile time\)",
                      verdicts[0])
  assert "suggestion: none found within --search_seconds=0" in result.stdout
  assert "Traceback" not in result.stderr


# A 2-layer decoder described by its config.json alone, wide and with short prompts, so
# matmuls are nearly all of its FLOPs (the model's count halves attention for the causal
# mask, XLA computes it whole). The evaluate job's own config, its classification and
# its translation task.
SMALL_DECODER = {"model_type": "llama", "vocab_size": 1000, "hidden_size": 1024,
                 "intermediate_size": 4096, "num_hidden_layers": 2, "num_attention_heads": 16,
                 "max_position_embeddings": 512, "tie_word_embeddings": False}
EVALUATE = ("--config=configs/evaluate.py:tiny", "--config.languages=ind",
            "--config.max_prompt_tokens=32", "--config.max_new_tokens=8",
            "--config.batch_size=16")


def decoder_dir(tmp_path, **fields) -> str:
  directory = tmp_path / "decoder"
  directory.mkdir()
  (directory / "config.json").write_text(json.dumps({**SMALL_DECODER, **fields}))
  return str(directory)


@needs_libtpu
def test_evaluation_steps_compile_for_a_tpu_slice(tmp_path):
  """The evaluate job's scoring and generation calls, as its Scorer and Generator make
  them, compiled for v5e-8 from a config.json; scoring's FLOPs are the model's forward
  count within 2% (only the last prompt position reaches the output head)."""
  result = run_plan(*EVALUATE, f"--config.model.path={decoder_dir(tmp_path)}",
                    "--target=v5e-8")
  assert result.returncode == 0, result.stdout + result.stderr[-3000:]
  out = result.stdout
  assert "scoring: 16 prompts x 32 tokens, 3 labels x 8 tokens" in out
  assert "generation: 16 prompts x 32 tokens + 8 new tokens, greedy" in out
  assert len(re.findall(r"peak per chip: [\d.]+ GiB of 16.00 GiB HBM", out)) == 2
  ratio = float(re.search(r"XLA/model ([\d.]+)", out).group(1))
  assert abs(ratio - 1) < 0.02, out
  assert out.strip().splitlines()[-1] == "verdict: fits on v5e-8"


@needs_libtpu
def test_evaluation_of_an_encoder_decoder_compiles_for_a_tpu_slice():
  """mT0 (the published config.json, sizes shrunk): the prompt encoded once, labels and
  new tokens through the decoder; no forward count to compare (two stacks, two inputs)."""
  result = run_plan(*EVALUATE, f"--config.model.path={REPO}/tests/published/mt0-base",
                    "--target=v5e-8")
  assert result.returncode == 0, result.stdout + result.stderr[-3000:]
  assert "3 labels x 8 tokens each from the prompt's encoding" in result.stdout
  assert result.stdout.count("no model count for an encoder-decoder") == 2
  assert result.stdout.strip().splitlines()[-1] == "verdict: fits on v5e-8"


@needs_libtpu
def test_evaluation_that_overflows_suggests_what_fits(tmp_path):
  """A 1M-token vocabulary at width 2048 (16 GiB of float32 embedding and head) does not
  fit replicated on one v5e chip; FSDP over the 8 chips does, and plan says so."""
  model = decoder_dir(tmp_path, vocab_size=1_000_000, hidden_size=2048,
                      intermediate_size=2048, num_attention_heads=16)
  result = run_plan(*EVALUATE, f"--config.model.path={model}", "--config.mt_tasks=",
                    "--target=v5e-8")
  assert result.returncode == plan.EXIT_DOES_NOT_FIT, result.stdout + result.stderr[-3000:]
  lines = result.stdout.strip().splitlines()
  assert lines[-2] == "verdict: does not fit on v5e-8"
  assert lines[-1] == "suggestion: fits with --config.mesh.shape='(1,-1,1)' (compiled)"
  assert "Traceback" not in result.stderr


@needs_libtpu
def test_univar_tiny_step_compiles_for_a_tpu_slice(tmp_path):
  """UniVaR's own step (`jobs.univar.train_spec`: InfoNCE on pairs of views): 16 pairs x
  2 views x 128 tokens, the batch over v4-8's 4 chips; XLA's FLOPs are the encoder's
  count (its layer kernels and attention) over both views within 5% (norms, GELU,
  softmax and the loss are not in the count)."""
  result = run_plan("--config=configs/univar.py:tiny", "--target=v4-8",
                    f"--config.model.path={encoder_dir(tmp_path)}")
  assert result.returncode == 0, result.stdout + result.stderr[-3000:]
  out = result.stdout
  assert "4 x TPU v4" in out and "(4, 1, 1)" in out
  assert "batch 16 pairs x 2 views x 128 tokens (4 rows per data shard" in out
  assert re.search(r"x 4096 tokens\)", out)  # 16 x 2 x 128: both views count
  ratio = float(re.search(r"XLA/model ([\d.]+)", out).group(1))
  assert abs(ratio - 1) < 0.05, out
  assert out.strip().splitlines()[-1] == "verdict: fits on v4-8"
  assert "Traceback" not in result.stderr


@needs_libtpu
def test_univar_paper_preset_fits_a_v5e_8(tmp_path):
  """The `paper` preset as it trains (batch 64, λ=5 so 1024 tokens per view, bf16
  compute, remat, the batch sharded over the 8 chips) on a small encoder config."""
  encoder = encoder_dir(tmp_path, hidden_size=256, num_attention_heads=4,
                        intermediate_size=1024)
  result = run_plan("--config=configs/univar.py:paper", "--target=v5e-8",
                    f"--config.model.path={encoder}")
  assert result.returncode == 0, result.stdout + result.stderr[-3000:]
  out = result.stdout
  assert "(8, 1, 1)" in out
  assert ("batch 64 pairs x 2 views x 1024 tokens (8 rows per data shard, microbatches 1); "
          "dtype bfloat16, params float32, remat True") in out
  assert out.strip().splitlines()[-1] == "verdict: fits on v5e-8"


def test_univar_view_length_beyond_the_encoders_positions_is_one_line(tmp_path):
  """λ=5 asks 1024 tokens; an encoder with 512 positions (as all-MiniLM-L6-v2) cannot
  take them: a configuration error before any compile."""
  encoder = encoder_dir(tmp_path, max_position_embeddings=512)
  result = run_plan("--config=configs/univar.py:paper", "--target=v5e-8",
                    f"--config.model.path={encoder}", timeout=300)
  assert result.returncode == 2, result.stdout + result.stderr[-3000:]
  errors = [l for l in result.stderr.splitlines() if "error" in l]
  assert len(errors) == 1 and "max_length=1024 (views.max_qas=5) exceeds the encoder's 512 " \
      "positions" in errors[0], result.stderr[-3000:]


def test_unknown_target_is_one_line():
  result = run_plan(*SMALL, "--target=v9-8", timeout=120)
  assert result.returncode == 2
  lines = [l for l in result.stderr.splitlines() if "error" in l]
  assert lines == [f"underrep_jax.main: configuration error: --target='v9-8': unknown "
                   f"target; known: {', '.join(plan.TARGETS)}"]
  assert result.stdout == ""


@pytest.mark.skipif(not HAS_CUDA_PLUGIN, reason='no CUDA plugin: pip install -e ".[cuda]"')
def test_compiles_for_a_gpu_node_without_a_gpu():
  """Deviceless: the shipped H100 target config; FLOPs from a CPU compile of the step."""
  result = run_plan(*SMALL, "--target=h100x8")
  assert result.returncode == 0, result.stdout + result.stderr[-3000:]
  assert "8 x NVIDIA H100 80GB HBM3" in result.stdout
  assert "counted on 8 host CPU devices" in result.stdout
  assert result.stdout.strip().splitlines()[-1] == "verdict: fits on h100x8"


def test_gpu_targets_without_the_cuda_plugin_say_what_to_install(tmp_path):
  # A plain `jax_plugins` package first on the path hides any installed plugin (they
  # live in that namespace package), so this runs whether or not `.[cuda]` is there.
  (tmp_path / "jax_plugins").mkdir()
  (tmp_path / "jax_plugins" / "__init__.py").write_text("")
  result = run_plan(*SMALL, "--target=h100x8", timeout=120,
                    pythonpath=os.pathsep.join([str(tmp_path), *sys.path]))
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == (
      "underrep_jax.main: configuration error: --target=h100x8: GPU targets need jax's CUDA "
      'plugin at jax\'s version: pip install -e ".[cuda]"')
