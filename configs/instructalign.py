"""InstructAlign: continual cross-lingual instruction tuning with experience replay.

    python -m underrep_jax.main --config=configs/instructalign.py:tiny --workdir=runs/ia_tiny
    python -m underrep_jax.main --config=configs/instructalign.py:bloomz-560m \
        --config.model.path=/ckpt/bloomz-560m --workdir=runs/ia_560m \
        --config.data.replay=/data/xp3_eng.jsonl --config.data.replay_examples=100000

Presets:
  tiny         a from-scratch small BLOOM with a SentencePiece vocabulary trained on the
               alignment data; minutes on a laptop CPU (the README's main job).
  bloomz-560m  the paper's setting (METHODS.md §1): full fine-tuning, AdamW lr 1e-5 with
  bloomz-1b1   linear decay and no warmup, batch 32, 50k steps, 128 tokens, loss on the
               whole sequence as in the original code, bf16 compute with remat.
  mt0-base     the same objectives on an encoder-decoder (mT0).
HF presets read a local checkpoint directory (config.json, safetensors, tokenizer.json):
set --config.model.path (downloads are up to you: e.g. `huggingface-cli download
bigscience/bloomz-560m --local-dir /ckpt/bloomz-560m`).

Checkpoints land in WORKDIR/checkpoints/<step>/ and the final model in WORKDIR/export/
(Hugging Face layout). Re-running with the same workdir resumes.
"""

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.job = "instructalign"
  config.data_dir = ""  # default: $UNDERREP_DATA_DIR, else download from upstream

  config.model = ml_collections.ConfigDict(dict(
      path="",            # HF checkpoint directory; empty: build `family` from `scratch`
      family="bloom",
      scratch=ml_collections.ConfigDict(dict(hidden_size=128, num_layers=2, num_heads=4)),
      dtype="float32",    # compute dtype
      param_dtype="float32",
      remat=False,
  ))

  config.data = ml_collections.ConfigDict(dict(
      objective_set="pair_xss",   # pair | pair_xss | random | random_xss | bilingual_xss | mlm | tlm | mt | xss
      corpus="flores",            # flores | nusaxmt | nusatranslation
      pivot="",                   # default: the corpus's first pivot (eng for flores)
      languages="",               # comma-separated codes; default: the seen languages
      xss_negatives="mismatch",   # mismatch (meaning) | corrupt (the original's noise pairs)
      replay="",                  # task/mixture name or a JSONL of {"inputs", "targets"}
      replay_examples=0,          # r: first r replay examples, interleaved 1:1 (0 = none)
      replay_rate=0.0,            # or a replay rate in (0, 1)
      split="train",
      inputs_length=96,
      targets_length=32,
      pack=True,
      vocab="model",              # model (the checkpoint's tokenizer) | sentencepiece | bytes | path
      vocab_size=8000,            # SentencePiece pieces at most
      seed=0,
  ))

  config.train = ml_collections.ConfigDict(dict(
      steps=1000, batch_size=32, microbatches=1, log_every=10, checkpoint_every=500,
      keep_checkpoints=3, seed=0,
      loss_on="targets",          # targets (SeqIO convention) | all (the original code)
      peak_flops_per_device=0.0,  # for MFU where the device table has no entry
      async_checkpoints=True,
  ))
  config.optimizer = ml_collections.ConfigDict(dict(
      name="adamw", learning_rate=1e-5, schedule="linear", warmup_steps=0,
      final_lr_ratio=0.0, weight_decay=0.0, b1=0.9, b2=0.999, eps=1e-8, clip_norm=1.0,
  ))
  config.mesh = ml_collections.ConfigDict(dict(shape=(-1, 1, 1)))
  config.export = True
  return config


def _paper(config: ml_collections.ConfigDict, path: str) -> None:
  config.model.path = path
  config.model.dtype = "bfloat16"
  config.model.remat = True
  config.data.inputs_length = 96
  config.data.targets_length = 32
  config.train.steps = 50_000
  config.train.batch_size = 32
  config.train.checkpoint_every = 2000
  config.train.loss_on = "all"


def get_config(preset: str = "tiny") -> ml_collections.ConfigDict:
  config = base_config()
  if preset == "tiny":
    config.data.vocab = "sentencepiece"
    config.data.vocab_size = 2000
    config.data.inputs_length = 160
    config.data.targets_length = 64
    config.train.steps = 200
    config.train.batch_size = 16
    config.train.log_every = 10
    config.train.checkpoint_every = 50
    config.optimizer.learning_rate = 3e-3
    config.optimizer.warmup_steps = 30
    config.optimizer.schedule = "cosine"
    config.optimizer.weight_decay = 0.01
  elif preset == "bloomz-560m":
    _paper(config, "checkpoints/bloomz-560m")
  elif preset == "bloomz-1b1":
    _paper(config, "checkpoints/bloomz-1b1")
  elif preset == "mt0-base":
    config.model.path = "checkpoints/mt0-base"
    config.model.family = "t5"
    config.data.inputs_length = 128
    config.data.targets_length = 64
    config.train.steps = 50_000
    config.optimizer.learning_rate = 1e-4
  else:
    raise ValueError(f"unknown preset {preset!r}; known: tiny, bloomz-560m, bloomz-1b1, "
                     "mt0-base")
  return config
