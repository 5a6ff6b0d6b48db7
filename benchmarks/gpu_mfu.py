"""MFU of a BLOOM-560M-shaped bf16 train step on one GPU (goal: 45% or more on an H100/H200).

The model has bigscience/bloomz-560m's shape (hidden 1024, 24 layers, 16 heads, vocab
250880, ALiBi, tied embeddings), built from scratch (no download): bf16 compute, float32
parameters and AdamW state, global-norm clipping, the loss on every token: the step the
training loop runs (`train.program`, through benchmarks/our_step.py). It times `--steps`
steps after a warm-up and prints tokens/s and the MFU against the device's dense bf16
peak (`train.metrics.PEAK_FLOPS`), counting the model's FLOPs as MaxText does
(`config.flops_per_token`: no remat recompute). The last line is `ratio=X.XX`: the MFU
over the 45% goal (>= 1: the goal is met).

  python benchmarks/gpu_mfu.py [--batch=8 --length=2048] [--remat] [--attention=cudnn|xla]
  python benchmarks/gpu_mfu.py --tiny    # a small shape on any backend (a smoke test)

Without a GPU it exits with status 2 and one line saying so, unless --tiny (then the CPU's
MFU is reported against --peak_tflops if given, else as n/a).
"""

import argparse
import statistics
import sys
import time

import jax
import numpy as np

from underrep_jax.models import registry
from underrep_jax.train import losses
from underrep_jax.train import metrics

GOAL_MFU = 0.45
BLOOM_560M = dict(vocab_size=250880, hidden_size=1024, num_layers=24, num_heads=16)
TINY = dict(vocab_size=512, hidden_size=64, num_layers=2, num_heads=4)
OPTIMIZER = dict(name="adamw", learning_rate=1e-5, schedule="constant", warmup_steps=0,
                 weight_decay=0.01, b1=0.9, b2=0.999, eps=1e-8, clip_norm=1.0,
                 no_decay_patterns=("bias", "norm", "ln_"))


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tiny", action="store_true", help="a small shape, any backend")
  parser.add_argument("--batch", type=int, default=None, help="rows (default 8; tiny 2)")
  parser.add_argument("--length", type=int, default=None, help="tokens (default 2048; tiny 32)")
  parser.add_argument("--remat", action="store_true", help="recompute each layer (nn.remat)")
  parser.add_argument("--scan_layers", action="store_true")
  parser.add_argument("--attention", default=None, choices=("xla", "cudnn"),
                      help="default: cudnn on a GPU, xla otherwise")
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--peak_tflops", type=float, default=0.0,
                      help="the device's dense bf16 peak, where PEAK_FLOPS has no entry")
  return parser.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(argv)
  device = jax.devices()[0]
  on_gpu = device.platform == "gpu"
  if not on_gpu and not args.tiny:
    print(f"gpu_mfu: no GPU here (jax sees {device.platform}: {device.device_kind}); run it "
          "on an NVIDIA GPU host, or pass --tiny for a small smoke run on this backend",
          file=sys.stderr)
    return 2
  shape = TINY if args.tiny else BLOOM_560M
  batch_rows = args.batch or (2 if args.tiny else 8)
  length = args.length or (32 if args.tiny else 2048)
  attention = args.attention or ("cudnn" if on_gpu else "xla")
  module = registry.build("bloom", shape, dtype="bfloat16", param_dtype="float32",
                          remat=args.remat, scan_layers=args.scan_layers, attention=attention)

  sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
  import our_step  # benchmarks/our_step.py: the training loop's program and step

  from underrep_jax import models
  from underrep_jax import parallel
  one_device = parallel.Topology.create(devices=[device])  # one chip, whatever the host has
  params = models.init_params(module, one_device, rng=jax.random.PRNGKey(0))
  rng = np.random.default_rng(0)
  seq = rng.integers(3, shape["vocab_size"], (batch_rows, length + 1)).astype(np.int32)
  batch = {"decoder_input_tokens": seq[:, :-1], "decoder_target_tokens": seq[:, 1:],
           "decoder_loss_weights": np.ones((batch_rows, length), np.int32)}
  loss_fn = losses.token_loss(losses.decoder_only_adapter(module), loss_on="targets")
  run = our_step.make_runner(module, params, loss_fn, batch, OPTIMIZER, devices=[device])

  start = time.perf_counter()
  first_loss = run()  # compiles
  compile_s = time.perf_counter() - start
  for _ in range(max(args.warmup - 1, 0)):
    run()
  times = []
  for _ in range(args.steps):
    start = time.perf_counter()
    loss = run()  # returns a float: waits for the step
    times.append(time.perf_counter() - start)
  step_s = statistics.median(times)

  tokens = batch_rows * length
  flops_per_token = module.config.flops_per_token(length)
  achieved = flops_per_token * tokens / step_s
  peak = args.peak_tflops * 1e12 or metrics.peak_flops_per_device(device)
  n_params = sum(x.size for x in jax.tree.leaves(params))
  print(f"device: {device.device_kind} ({device.platform}); jax {jax.__version__}")
  print(f"bloom {'tiny' if args.tiny else '560M-shaped'}: hidden={shape['hidden_size']} "
        f"layers={shape['num_layers']} heads={shape['num_heads']} vocab={shape['vocab_size']} "
        f"params={n_params / 1e6:.1f}M; batch {batch_rows}x{length}, bf16 compute, f32 params "
        f"and AdamW, remat={args.remat}, scan_layers={args.scan_layers}, attention={attention}")
  print(f"first-step loss {first_loss:.4f} (ln V = {np.log(shape['vocab_size']):.4f}), last "
        f"{loss:.4f}; compile + first step {compile_s:.1f} s")
  print(f"step median {step_s * 1e3:.1f} ms over {args.steps} steps; {tokens / step_s:,.0f} "
        f"tokens/s; model {achieved / 1e12:.2f} TFLOP/s ({flops_per_token:.3g} FLOPs per token)")
  if peak:
    mfu = achieved / peak
    print(f"MFU {mfu:.1%} of {peak / 1e12:.0f} TFLOP/s dense bf16 peak (goal {GOAL_MFU:.0%})")
    print(f"ratio={mfu / GOAL_MFU:.2f}")
  else:
    print(f"MFU n/a: no peak for {device.device_kind!r} (pass --peak_tflops)")
    print("ratio=n/a")
  return 0


if __name__ == "__main__":
  sys.exit(main())
