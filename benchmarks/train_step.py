"""Our jitted BLOOM train step (underrep_jax.train) vs transformers' PyTorch BLOOM, on CPU.

The default model is about 40M parameters (hidden 512, 10 layers, vocab 16384) on an 8x256
batch. A float32 matmul timed in the same run stands for the machine's peak, so model
FLOP/s are also reported as a fraction of it (a CPU "MFU").

Same random weights (an HF BloomForCausalLM saved and loaded through models.hf), same
batch, float32, AdamW with the same hyper-parameters and global-norm clipping, loss on
every token. The first-step losses are printed as a parity check. After warm-up, the
steps alternate between the two; the last line is `ratio=X.XX`: torch step time / our
step time (>1 means we are faster).

  python benchmarks/train_step.py [--hidden=512 --layers=10 --heads=8 --vocab=16384]
                                  [--batch=8 --length=256 --runs=5]
"""

import argparse
import os
import statistics
import tempfile
import time

import jax
import numpy as np
import torch
import transformers

from underrep_jax.models import hf
from underrep_jax.train import losses
from underrep_jax.train import metrics

import timing  # benchmarks/timing.py
import our_step  # benchmarks/our_step.py
import torch_reference  # benchmarks/torch_reference.py

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
  args = parser.parse_args()
  torch.set_num_threads(args.threads)
  torch.manual_seed(0)

  config = transformers.BloomConfig(vocab_size=args.vocab, hidden_size=args.hidden,
                                    n_layer=args.layers, n_head=args.heads)
  theirs = transformers.BloomForCausalLM(config).train()
  with tempfile.TemporaryDirectory() as tmp:
    theirs.save_pretrained(tmp, safe_serialization=True)
    ours = hf.load(tmp, dtype="float32")

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
  run_ours = our_step.make_runner(ours.module, ours.params, loss_fn, batch, OPTIMIZER)
  run_theirs = torch_reference.train_step_runner(
      theirs, torch_reference.adamw(theirs, OPTIMIZER),
      lambda m: m(input_ids=ids_t, labels=ids_t).loss, OPTIMIZER["clip_norm"])

  first, ours_s, torch_s = timing.race(run_ours, run_theirs, args.runs)
  peak = matmul_peak_flops()
  tokens = args.batch * args.length
  n_params = sum(x.size for x in jax.tree.leaves(ours.params))
  flops = metrics.transformer_flops_per_token(n_params, args.layers, args.hidden, args.length)
  print(f"bloom hidden={args.hidden} layers={args.layers} heads={args.heads} vocab={args.vocab} "
        f"params={n_params / 1e6:.1f}M batch={args.batch}x{args.length} fp32 "
        f"threads={args.threads} runs={args.runs}")
  diff = abs(first[0] - first[1])
  print(f"first-step loss: ours {first[0]:.6f}  torch {first[1]:.6f}  diff {diff:.2e}")
  for name, s in (("ours (jax.jit)", ours_s), ("torch (eager)", torch_s)):
    print(f"{name:15s} median {s * 1e3:8.1f} ms  {tokens / s:9.0f} tokens/s  "
          f"{flops * tokens / s / 1e9:7.1f} GFLOP/s  {flops * tokens / s / peak:6.1%} of matmul peak")
  print(f"float32 matmul peak: {peak / 1e9:.1f} GFLOP/s")
  print(f"ratio={torch_s / ours_s:.2f}")


if __name__ == "__main__":
  main()
