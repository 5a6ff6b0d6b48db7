"""Our jitted Llama train step vs MaxText's own train step, same model, same CPU, one process.

The model is `benchmarks/llama_60m/config.json` (d 512, 8 layers, 8 heads of 64, MLP 1376,
vocabulary 32000, untied; 58.1M parameters), on an 8x256 batch, float32 compute and
parameters, no remat, AdamW with global-norm clipping. MaxText builds its step the way its
`train.py` does (`train_utils.setup_train_loop`, `jit_train_and_eval_step`) from its
`base.yml` with only the model's sizes and these settings overridden, so its other defaults
(scanned layers, its AdamW's weight decay, logits cast to float32) stay as its users get
them. Both get the same tokens; each starts from its own random weights, so the first-step
losses agree only to about ln(32000) = 10.37. After a first and a warm-up call each, steps
alternate between the two; the last line is `ratio=X.XX`: MaxText's step time / ours (>1
means we are faster).

"No remat" is MaxText's `remat_policy=minimal_with_context` (its least recomputation;
its `none` recomputes every layer, see maxtext_memory.MAXTEXT_REMAT).

MaxText is not a dependency of the project: `bash benchmarks/install_maxtext.sh DIR`
installs it into DIR, for these benchmarks only. Then

  PYTHONPATH=DIR python benchmarks/maxtext_step.py [--batch=8 --length=256 --runs=5]
"""

import argparse
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")  # a CPU benchmark: no probing for a TPU

import jax  # noqa: E402
import numpy as np

from underrep_jax.models import hf
from underrep_jax.models import initialize
from underrep_jax.train import losses
from underrep_jax.train import metrics

import maxtext_memory  # benchmarks/maxtext_memory.py
import our_step  # benchmarks/our_step.py
import timing  # benchmarks/timing.py

MODEL_DIR = maxtext_memory.MODEL_DIR
CLIP_NORM = 1.0
OPTIMIZER = dict(name="adamw", learning_rate=1e-4, schedule="constant", warmup_steps=0,
                 weight_decay=0.1, b1=0.9, b2=0.95, eps=1e-8, clip_norm=CLIP_NORM,
                 no_decay_patterns=())


def maxtext_overrides(model: dict, batch: int, length: int, steps: int) -> list[str]:
  """MaxText's `key=value` overrides for the same model and step (one CPU device, so
  per_device_batch_size is the global batch)."""
  return [
      *maxtext_memory.model_overrides(model),
      f"max_target_length={length}", f"per_device_batch_size={batch}",
      "dtype=float32", "weight_dtype=float32",
      f"remat_policy={maxtext_memory.MAXTEXT_REMAT[False]}", "enable_dropout=false",
      "hardware=cpu", "dataset_type=synthetic", f"steps={steps}",
      f"gradient_clipping_threshold={CLIP_NORM}",
      f"adam_b1={OPTIMIZER['b1']}", f"adam_b2={OPTIMIZER['b2']}",
      f"adam_weight_decay={OPTIMIZER['weight_decay']}",
      "enable_checkpointing=false", "enable_goodput_recording=false",
      "monitor_goodput=false", "skip_jax_distributed_system=true",
      "run_name=maxtext_step", f"base_output_directory={os.environ.get('TMPDIR', '/tmp')}",
  ]


def maxtext_runner(overrides: list[str], tokens: np.ndarray):
  """A call runs one MaxText train step on `tokens` ([B, T+1]) and returns its loss."""
  from maxtext.configs import pyconfig  # pylint: disable=import-outside-toplevel
  from maxtext.trainers.pre_train import train  # pylint: disable=import-outside-toplevel
  from maxtext.utils import sharding  # pylint: disable=import-outside-toplevel
  from maxtext.utils import train_utils  # pylint: disable=import-outside-toplevel
  from flax import linen as nn  # pylint: disable=import-outside-toplevel
  from flax import nnx  # pylint: disable=import-outside-toplevel

  config = pyconfig.initialize(["maxtext_step", str(maxtext_memory.base_yml()), *overrides])
  (init_rng, _, state_mesh_shardings, model, mesh, _, _, _, _, _, state
   ) = train_utils.setup_train_loop(config, None)
  # As MaxText's train.train_loop: its step's model argument and parameter shardings.
  params_shardings, state_mesh_shardings = sharding.maybe_update_params_sharding_with_opt(
      config, state_mesh_shardings)
  is_linen = isinstance(model, nn.Module)
  if is_linen:
    step_model = model
  else:
    step_model, state = nnx.split(state)
  p_train_step, _ = train_utils.jit_train_and_eval_step(
      config, step_model, mesh, state, state_mesh_shardings, train.train_step,
      params_shardings=params_shardings)
  rows, length = tokens.shape[0], tokens.shape[1] - 1
  positions = np.broadcast_to(np.arange(length, dtype=np.int32), (rows, length))
  ones = np.ones((rows, length), np.int32)
  batch = {"inputs": tokens[:, :-1], "inputs_position": positions, "inputs_segmentation": ones,
           "targets": tokens[:, 1:], "targets_position": positions, "targets_segmentation": ones}
  batch = jax.device_put(batch)

  def run() -> float:
    nonlocal state
    with jax.set_mesh(mesh):
      state, step_metrics = (p_train_step(state, batch, init_rng) if is_linen
                             else p_train_step(state, batch))
    return float(step_metrics["scalar"]["learning/loss"])

  return run


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--length", type=int, default=256)
  parser.add_argument("--runs", type=int, default=5)
  args = parser.parse_args()
  model_config = hf.read_config(MODEL_DIR)

  rng = np.random.default_rng(0)
  tokens = rng.integers(3, model_config["vocab_size"], (args.batch, args.length + 1),
                        dtype=np.int32)
  batch = {"decoder_input_tokens": tokens[:, :-1], "decoder_target_tokens": tokens[:, 1:],
           "decoder_loss_weights": np.ones((args.batch, args.length), np.int32)}
  module = hf.build_module(MODEL_DIR, dtype="float32", remat=False)
  params = initialize.init_params(module)
  loss_fn = losses.token_loss(losses.decoder_only_adapter(module), loss_on="targets")
  run_ours = our_step.make_runner(module, params, loss_fn, batch, OPTIMIZER)
  run_theirs = maxtext_runner(
      maxtext_overrides(model_config, args.batch, args.length, steps=2 * args.runs + 10), tokens)

  first, ours_s, theirs_s = timing.race(run_ours, run_theirs, args.runs)
  n_params = sum(x.size for x in jax.tree.leaves(params))
  flops = metrics.transformer_flops_per_token(
      n_params, model_config["num_hidden_layers"], model_config["hidden_size"], args.length)
  n_tokens = args.batch * args.length
  print(f"llama {MODEL_DIR.name} params={n_params / 1e6:.1f}M batch={args.batch}x{args.length} "
        f"fp32 no remat runs={args.runs} devices={jax.device_count()} cpus={os.cpu_count()}")
  print(f"first-step loss: ours {first[0]:.4f}  maxtext {first[1]:.4f}")
  for name, s in (("ours", ours_s), ("maxtext", theirs_s)):
    print(f"{name:8s} median {s * 1e3:8.1f} ms  {n_tokens / s:8.0f} tokens/s  "
          f"{flops * n_tokens / s / 1e9:7.1f} GFLOP/s")
  print(f"ratio={theirs_s / ours_s:.2f}")


if __name__ == "__main__":
  main()
