"""Our jitted BLOOM train step (underrep_jax.train) vs transformers' PyTorch BLOOM, on CPU.

The default model is about 40M parameters (hidden 512, 10 layers, vocab 16384) on an 8x256
batch. A float32 matmul timed in the same run stands for the machine's peak, so model
FLOP/s are also reported as a fraction of it (a CPU "MFU").

Same random weights (an HF BloomForCausalLM saved and loaded through models.hf), same
batch, float32, AdamW with the same hyper-parameters and global-norm clipping, loss on
every token. The first-step losses are printed as a parity check. After warm-up, the
steps alternate between the two; the last line is `ratio=X.XX`: torch step time / our
step time (>1 means we are faster). `--parts` also races the step's parts (forward only,
forward and backward, the optimizer's update) and prints a `ratio=` for each before the
step's; `--profile` prints where our forward and backward pass spends its time, by XLA
operation.

  python benchmarks/train_step.py [--hidden=512 --layers=10 --heads=8 --vocab=16384]
                                  [--batch=8 --length=256 --runs=5] [--parts] [--profile]
                                  [--scan_layers]
"""

import argparse
import collections
import gzip
import json
import os
import pathlib
import statistics
import tempfile
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")  # a CPU benchmark: no probing for a TPU

import jax  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from underrep_jax.models import hf  # noqa: E402
from underrep_jax.train import losses  # noqa: E402
from underrep_jax.train import metrics  # noqa: E402

import timing  # noqa: E402  benchmarks/timing.py
import our_step  # noqa: E402  benchmarks/our_step.py
import torch_reference  # noqa: E402  benchmarks/torch_reference.py

OPTIMIZER = dict(name="adamw", learning_rate=1e-4, schedule="constant", warmup_steps=0,
                 weight_decay=0.01, b1=0.9, b2=0.999, eps=1e-8, clip_norm=1.0,
                 no_decay_patterns=("bias", "norm", "ln_"))


def matmul_peak_flops(size: int = 2048, runs: int = 5) -> float:
  """FLOP/s of a jitted float32 [size, size] @ [size, size]: the machine's practical peak."""
  a = jax.random.normal(jax.random.PRNGKey(0), (size, size), jax.numpy.float32)
  matmul = jax.jit(lambda x: x @ x)
  matmul(a).block_until_ready()
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    matmul(a).block_until_ready()
    times.append(time.perf_counter() - start)
  return 2 * size ** 3 / statistics.median(times)


def operation_times(run, calls: int = 2) -> collections.Counter:
  """Microseconds per call of each XLA CPU operation (fusion) in `run`, from the runtime's
  trace (`jax.profiler`). Operations on the two cores overlap, so these add up to more
  than the wall time."""
  run()  # compiled before the trace
  with tempfile.TemporaryDirectory() as trace_dir:
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      for _ in range(calls):
        run()
    trace_file = next(pathlib.Path(trace_dir).rglob("*perfetto_trace.json.gz"))
    events = json.load(gzip.open(trace_file))
  events = events["traceEvents"] if isinstance(events, dict) else events
  times = collections.Counter()
  for event in events:
    name = event.get("name", "")
    if event.get("ph") == "X" and not name.startswith("$") and "Thunk" not in name:
      times[name] += event.get("dur", 0) / calls
  return times


def print_profile(times: collections.Counter, top: int = 8) -> None:
  """Operation time by kind (the fusion's name without its number), then the largest."""
  kinds = collections.Counter()
  for name, us in times.items():
    kinds[name.rstrip("0123456789").rstrip(".")] += us
  for name, us in kinds.most_common(top):
    print(f"profile kind {name:32s} {us / 1e3:8.1f} ms")
  for name, us in times.most_common(top):
    print(f"profile op   {name:32s} {us / 1e3:8.1f} ms")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--hidden", type=int, default=512)
  parser.add_argument("--layers", type=int, default=10)
  parser.add_argument("--heads", type=int, default=8)
  parser.add_argument("--vocab", type=int, default=16384)
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--length", type=int, default=256)
  parser.add_argument("--runs", type=int, default=5)
  parser.add_argument("--threads", type=int, default=os.cpu_count())
  parser.add_argument("--scan_layers", action="store_true",
                      help="our layers as one scanned loop (model.scan_layers)")
  parser.add_argument("--profile", action="store_true",
                      help="print our forward and backward pass's operation times by kind")
  parser.add_argument("--parts", action="store_true",
                      help="also time the step's parts side by side: forward, forward and "
                           "backward, the optimizer's update")
  args = parser.parse_args()
  torch.set_num_threads(args.threads)
  torch.manual_seed(0)

  config = transformers.BloomConfig(vocab_size=args.vocab, hidden_size=args.hidden,
                                    n_layer=args.layers, n_head=args.heads)
  theirs = transformers.BloomForCausalLM(config).train()
  with tempfile.TemporaryDirectory() as tmp:
    theirs.save_pretrained(tmp, safe_serialization=True)
    ours = hf.load(tmp, dtype="float32", scan_layers=args.scan_layers)

  rng = np.random.default_rng(0)
  seq = rng.integers(3, args.vocab, (args.batch, args.length + 1)).astype(np.int32)
  # HF shifts labels inside the model: T inputs give T-1 predictions. Ours get the same
  # T inputs with the T-th target's weight set to 0.
  weights = np.ones((args.batch, args.length), np.int32)
  weights[:, -1] = 0
  batch = {"decoder_input_tokens": seq[:, :-1], "decoder_target_tokens": seq[:, 1:],
           "decoder_loss_weights": weights}
  ids_t = torch.as_tensor(seq[:, :-1], dtype=torch.long)

  loss_fn = losses.token_loss(losses.decoder_only_adapter(ours.module), loss_on="targets")
  torch_loss = lambda m: m(input_ids=ids_t, labels=ids_t).loss  # noqa: E731
  torch_optimizer = torch_reference.adamw(theirs, OPTIMIZER)
  if args.parts or args.profile:  # before the step runner donates the parameters
    parts = our_step.make_part_runners(ours.module, jax.tree.map(np.array, ours.params),
                                       loss_fn, batch, OPTIMIZER)
    torch_parts = torch_reference.part_runners(theirs, torch_optimizer, torch_loss,
                                               OPTIMIZER["clip_norm"])
  run_ours = our_step.make_runner(ours.module, ours.params, loss_fn, batch, OPTIMIZER)
  run_theirs = torch_reference.train_step_runner(theirs, torch_optimizer, torch_loss,
                                                 OPTIMIZER["clip_norm"])

  first, ours_s, torch_s = timing.race(run_ours, run_theirs, args.runs)
  peak = matmul_peak_flops()
  tokens = args.batch * args.length
  n_params = sum(x.size for x in jax.tree.leaves(ours.params))
  flops = metrics.transformer_flops_per_token(n_params, args.layers, args.hidden, args.length)
  print(f"bloom hidden={args.hidden} layers={args.layers} heads={args.heads} vocab={args.vocab} "
        f"params={n_params / 1e6:.1f}M batch={args.batch}x{args.length} fp32 "
        f"threads={args.threads} runs={args.runs}"
        f"{' scan_layers' if args.scan_layers else ''}")
  diff = abs(first[0] - first[1])
  print(f"first-step loss: ours {first[0]:.6f}  torch {first[1]:.6f}  diff {diff:.2e}")
  for name, s in (("ours (jax.jit)", ours_s), ("torch (eager)", torch_s)):
    print(f"{name:15s} median {s * 1e3:8.1f} ms  {tokens / s:9.0f} tokens/s  "
          f"{flops * tokens / s / 1e9:7.1f} GFLOP/s  "
          f"{flops * tokens / s / peak:6.1%} of matmul peak")
  print(f"float32 matmul peak: {peak / 1e9:.1f} GFLOP/s")
  if args.parts:
    for name in parts:
      _, part_s, torch_part_s = timing.race(parts[name], torch_parts[name], args.runs)
      print(f"part {name:16s} ours {part_s * 1e3:8.1f} ms  torch {torch_part_s * 1e3:8.1f} ms  "
            f"ratio={torch_part_s / part_s:.2f}")
  if args.profile:
    print_profile(operation_times(parts["forward+backward"]))
  print(f"ratio={torch_s / ours_s:.2f}")


if __name__ == "__main__":
  main()
