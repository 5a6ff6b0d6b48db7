"""The declared config sections every job is built from, each default written once.

A job's config file (configs/*.py) assembles these sections and adds its own fields; the
code that reads a section (`train.loop`, `train.optimizer`, `parallel.Topology`,
`models.runtime`) reads every field directly, with no default of its own, so the config
a run saves with its checkpoints is exactly what ran, and every field is overridable
from the command line (`--config.mesh.rules="(('batch', 'data'), ...)"`).

Sections:
  model      which network: a checkpoint (path or Hub id) or a family built from scratch,
             and how it computes (dtype, param_dtype, remat, scan_layers, attention);
  train      the loop: steps, batch, microbatches, cadences, checkpoints, seed;
  optimizer  AdamW, its schedule, clipping and what is not decayed;
  mesh       the device mesh and the logical-axis rules that place arrays on it.

This module imports no JAX: configs load in a fraction of a second.
"""

import ml_collections

# Logical axis -> mesh axes (T5X/MaxText style): batch over data+fsdp, weights sharded
# over fsdp on their embedding axis and over tensor on their "wide" axis (mlp, heads,
# vocab). `parallel` reads it from here.
DEFAULT_RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("kv", None),
    ("vocab", "tensor"),
    ("layers", None),
    ("norm", None),
    ("relpos_buckets", None),
)

# Parameters never weight-decayed besides every one with fewer than 2 dimensions:
# regexes on "/"-joined parameter paths.
DEFAULT_NO_DECAY_PATTERNS = ("bias", "norm", "ln_")


def model(**overrides) -> ml_collections.ConfigDict:
  """The network: `path` (an HF directory, a training workdir or a Hub id) or, when it
  is empty, `family` built from `scratch` (jobs with a default checkpoint name it)."""
  section = ml_collections.ConfigDict(dict(
      path="",            # HF directory, training workdir (its export/) or Hub id org/name
      revision="",        # Hub ids: branch, tag or commit ("" = main)
      family="bloom",     # from scratch: bloom | llama | xglm | t5 | bert
      scratch=ml_collections.ConfigDict(dict(hidden_size=128, num_layers=2, num_heads=4)),
      dtype="float32",    # compute dtype
      param_dtype="float32",
      remat=False,        # recompute each layer's activations in the backward pass
      scan_layers=False,  # decoder-only families: the layers as one nn.scan (one compiled
                          # layer; parameters stacked on a leading "layers" axis)
      attention="xla",    # xla (every backend) | cudnn (jax.nn.dot_product_attention's
                          # cuDNN flash attention: NVIDIA GPUs, bf16/fp16) | splash (the
                          # Pallas splash kernel: TPUs, causal Llama-family models)
  ))
  section.update(overrides)
  return section


def train(**extra) -> ml_collections.ConfigDict:
  """The training loop's fields (`train.loop`); `extra` adds a job's own fields."""
  section = ml_collections.ConfigDict(dict(
      steps=1000,                 # optimizer updates
      batch_size=32,              # global rows per update (all hosts, all microbatches)
      microbatches=1,             # gradient accumulation inside one update
      log_every=10,
      checkpoint_every=500,       # 0: only at the end and on SIGTERM
      keep_checkpoints=3,
      seed=0,                     # parameter init and the per-step dropout rng
      peak_flops_per_device=0.0,  # for MFU where the device table has no entry
      async_checkpoints=True,
      allow_config_change=False,  # resume a workdir whose checkpoint has another config
  ))
  section.update(extra)
  return section


def optimizer(**overrides) -> ml_collections.ConfigDict:
  """AdamW (`train.optimizer`): schedule = linear warmup, then constant | linear |
  cosine | inverse_sqrt, ending at final_lr_ratio x the peak (linear, cosine)."""
  section = ml_collections.ConfigDict(dict(
      name="adamw", learning_rate=1e-5, schedule="linear", warmup_steps=0,
      final_lr_ratio=0.0, weight_decay=0.0, b1=0.9, b2=0.999, eps=1e-8,
      clip_norm=1.0,              # global-norm clipping; 0: none
      no_decay_patterns=DEFAULT_NO_DECAY_PATTERNS,
  ))
  section.update(overrides)
  return section


def mesh(**overrides) -> ml_collections.ConfigDict:
  """`shape` (data, fsdp, tensor), -1 = the rest of the devices; `rules` maps the models'
  logical axes onto those mesh axes (`parallel.Topology.from_config`)."""
  section = ml_collections.ConfigDict(dict(shape=(-1, 1, 1), rules=DEFAULT_RULES))
  section.update(overrides)
  return section
