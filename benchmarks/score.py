"""Zero-shot scoring throughput: ours (JAX, prompt once + labels from the KV cache) vs a
straightforward batched PyTorch transformers loop (one forward pass per label, as the
original code did), on the same tiny random BLOOM and the same 400 NusaX examples.

    python benchmarks/score.py

Both are warmed up on one batch first (JAX compilation is not timed). Prints examples/s
for both and, on the last line, `ratio=X.XX` (ours / torch). The same scoring is also
timed with the batch split over 8 devices (`--devices`, simulated CPU devices here:
they share the host's cores, so the figure shows what sharding costs, not a speed-up),
on the line `devices_ratio=X.XX` (8 devices / 1).
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_DEVICES = 8
if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             f" --xla_force_host_platform_device_count={_DEVICES}").strip()

import numpy as np  # noqa: E402


def torch_scores(model, prompt_tokens, label_tokens, batch_size: int, pad: int) -> np.ndarray:
  """Label-token log-prob sums, one right-padded forward pass per label and batch."""
  import torch
  out = np.zeros((len(prompt_tokens), len(label_tokens)))
  for start in range(0, len(prompt_tokens), batch_size):
    rows = prompt_tokens[start:start + batch_size]
    for j, label in enumerate(label_tokens):
      seqs = [r + label for r in rows]
      length = max(len(s) for s in seqs)
      ids = torch.full((len(seqs), length), pad, dtype=torch.long)
      mask = torch.zeros((len(seqs), length), dtype=torch.long)
      for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
      with torch.inference_mode():
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)
      for i, r in enumerate(rows):
        positions = torch.arange(len(r) - 1, len(r) + len(label) - 1)
        out[start + i, j] = logp[i, positions, torch.tensor(label)].sum().item()
  return out


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--examples", type=int, default=400)
  parser.add_argument("--batch_size", type=int, default=16)
  parser.add_argument("--hidden_size", type=int, default=256)
  parser.add_argument("--layers", type=int, default=4)
  parser.add_argument("--devices", type=int, default=_DEVICES,
                      help="data-parallel devices of the sharded run")
  args = parser.parse_args()

  import torch
  from underrep_jax import parallel
  from underrep_jax.data import prompts as prompt_lib
  from underrep_jax.data import readers
  from underrep_jax.evaluation import model_loading, scoring, testing

  rows = readers.nusax_sentiment("sun", "test")[:args.examples]
  prompt = prompt_lib.classification_prompts("sentiment", "sentiment",
                                             labels=readers.LABELS["nusax_senti"])[0]
  with tempfile.TemporaryDirectory() as tmp:
    torch_model = testing.save_tiny_lm(tmp, hidden_size=args.hidden_size, n_layer=args.layers,
                                       n_head=4)
    ours = model_loading.load(tmp)
    prompt_tokens = model_loading.encode(ours, [prompt.fill(r["text"], "sun") for r in rows])
    label_tokens = model_loading.encode(ours, [prompt.answer(l) for l in prompt.verbalizer])
    scorer = scoring.Scorer(ours, batch_size=args.batch_size)
    pad = ours.ids.pad
    # Warm-up: one pass compiles every prompt-length bucket the timed pass meets (the
    # scorer batches prompts by length); one batch for torch.
    scorer.score_ids(prompt_tokens, label_tokens, ("sum",))
    torch_scores(torch_model, prompt_tokens[:args.batch_size], label_tokens, args.batch_size, pad)

    t0 = time.perf_counter()
    ours_out = scorer.score_ids(prompt_tokens, label_tokens, ("sum",))["sum"]
    ours_time = time.perf_counter() - t0
    t0 = time.perf_counter()
    torch_out = torch_scores(torch_model, prompt_tokens, label_tokens, args.batch_size, pad)
    torch_time = time.perf_counter() - t0

    sharded = model_loading.load(tmp, topology=parallel.Topology.create((args.devices, 1, 1)))
    sharded_scorer = scoring.Scorer(sharded, batch_size=args.batch_size)
    sharded_scorer.score_ids(prompt_tokens, label_tokens, ("sum",))
    t0 = time.perf_counter()
    sharded_out = sharded_scorer.score_ids(prompt_tokens, label_tokens, ("sum",))["sum"]
    sharded_time = time.perf_counter() - t0
  diff = float(np.max(np.abs(ours_out - torch_out)))
  sharded_diff = float(np.max(np.abs(ours_out - sharded_out)))
  ours_rate, torch_rate = len(rows) / ours_time, len(rows) / torch_time
  print(f"examples={len(rows)} labels={len(label_tokens)} torch_threads={torch.get_num_threads()}"
        f" max|ours-torch|={diff:.2e}")
  print(f"ours:  {ours_rate:.1f} examples/s")
  print(f"torch: {torch_rate:.1f} examples/s")
  print(f"ours on {args.devices} devices: {len(rows) / sharded_time:.1f} examples/s "
        f"(max|8 devices - 1|={sharded_diff:.2e})")
  print(f"devices_ratio={ours_time / sharded_time:.2f}")
  print(f"ratio={ours_rate / torch_rate:.2f}")


if __name__ == "__main__":
  main()
