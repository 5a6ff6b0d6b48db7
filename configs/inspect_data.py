"""Inspect a SeqIO task or mixture: token-length statistics and a few examples.

    python -m underrep_jax.main --config=configs/inspect_data.py --workdir=runs/inspect
    python -m underrep_jax.main --config=configs/inspect_data.py:nusax --workdir=runs/inspect \
        --config.data.num_examples=500

Writes WORKDIR/data_summary.json (length statistics per feature, to choose sequence
lengths) and WORKDIR/examples.jsonl (the first examples as text).

`truncation` in the summary counts the examples cut (count and fraction, for inputs,
targets and in total) under the shared budget `max_length` (prompt and target cut
together, InstructAlign's paper presets), under the split `inputs_length` /
`targets_length`, and under each split of the budget in `candidate_inputs_lengths`, naming
the split that cuts the fewest. Token counts are those of `vocab`: measure with the
model's own tokenizer (a checkpoint directory) where you have it.
"""

import ml_collections

PRESETS = {
    # The InstructAlign default: MT + TLM + XSS on FLORES (SIB-200), English pivot.
    "": dict(mixture="instructalign_pair_xss_flores_eng"),
    "nusax": dict(mixture="instructalign_pair_xss_nusaxmt_ind"),
    "nusatranslation": dict(mixture="instructalign_pair_xss_nusatranslation_ind"),
    "eval": dict(mixture="nusax_senti", split="test"),
}


def get_config(preset: str = "") -> ml_collections.ConfigDict:
  if preset not in PRESETS:
    raise ValueError(f"unknown preset {preset!r}; known: {sorted(PRESETS)}")
  config = ml_collections.ConfigDict()
  config.job = "inspect_data"
  config.data_dir = ""  # default: $UNDERREP_DATA_DIR, else download from upstream
  config.data = ml_collections.ConfigDict(dict(
      mixture="instructalign_pair_xss_flores_eng",
      split="train",
      num_examples=200,   # examples measured
      show=3,             # examples printed
      seed=0,
      # "bytes", "sentencepiece" (trained on the corpus, saved in WORKDIR/vocab/), or a
      # path to an HF tokenizer directory / SentencePiece .model file.
      vocab="sentencepiece",
      vocab_size=4000,
      # Truncation figures: the shared budget, the split, and splits of the budget to try.
      max_length=128,
      inputs_length=88,
      targets_length=40,
      candidate_inputs_lengths="64,72,80,84,88,92,96,104,112",
      verify="warn",      # local data vs the pinned SHA-256 sums: warn | strict | off
  ))
  config.data.update(PRESETS[preset])
  return config
