"""AdamW with a weight-decay mask, global-norm clipping and learning-rate schedules.

Reads the `config.optimizer` section (declared, with its defaults, in
`config_schema.optimizer`):
  name: "adamw" (the only optimiser; the field exists so configs say what they use).
  learning_rate: peak learning rate, reached at the end of warmup.
  schedule: "constant" | "linear" | "cosine" | "inverse_sqrt" (what follows warmup).
  warmup_steps: linear warmup from 0 to `learning_rate` (0 = none).
  final_lr_ratio: where "linear" and "cosine" end, as a fraction of the peak (default 0).
  weight_decay: decoupled AdamW decay, applied only where `decay_mask` says so.
  no_decay_patterns: regexes on "/"-joined parameter paths that are never decayed, on top
    of every parameter with fewer than 2 dimensions (biases, norm scales).
  b1, b2, eps: Adam moments.
  clip_norm: global-norm gradient clipping threshold (0 or None = no clipping).

Schedules count optimizer updates (train steps), not microbatches.
"""

from collections.abc import Sequence
import re

import jax
import jax.numpy as jnp
import optax

from underrep_jax import config_schema

SCHEDULES = ("constant", "linear", "cosine", "inverse_sqrt")
DEFAULT_NO_DECAY_PATTERNS = config_schema.DEFAULT_NO_DECAY_PATTERNS


def make_schedule(name: str, learning_rate: float, total_steps: int, warmup_steps: int = 0,
                  final_lr_ratio: float = 0.0) -> optax.Schedule:
  """Returns step -> learning rate: linear warmup, then the named decay.

  "linear" and "cosine" reach `final_lr_ratio * learning_rate` at `total_steps`;
  "inverse_sqrt" is lr * sqrt(max(warmup, 1) / max(step, warmup, 1)) (T5 style, continuous
  at the end of warmup).
  """
  if name not in SCHEDULES:
    raise ValueError(f"unknown schedule {name!r}; expected one of {SCHEDULES}")
  warmup_steps = int(warmup_steps or 0)
  decay_steps = max(int(total_steps) - warmup_steps, 1)
  end = learning_rate * final_lr_ratio
  if name == "constant":
    after = optax.constant_schedule(learning_rate)
  elif name == "linear":
    after = optax.linear_schedule(learning_rate, end, decay_steps)
  elif name == "cosine":
    after = optax.cosine_decay_schedule(learning_rate, decay_steps, alpha=final_lr_ratio)
  else:
    base = max(warmup_steps, 1)

    def after(count):  # `count` restarts at 0 after warmup; shift it back.
      step = jnp.maximum(count + warmup_steps, base).astype(jnp.float32)
      return learning_rate * jnp.sqrt(base / step)
  if warmup_steps == 0:
    return after
  warmup = optax.linear_schedule(0.0, learning_rate, warmup_steps)
  return optax.join_schedules([warmup, after], [warmup_steps])


def decay_mask(params, no_decay_patterns: Sequence[str] = DEFAULT_NO_DECAY_PATTERNS):
  """True where weight decay applies: matrices whose path matches no exclusion pattern."""
  regexes = [re.compile(p, re.IGNORECASE) for p in no_decay_patterns]

  def decays(path, leaf):
    name = "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)
    return jnp.ndim(leaf) >= 2 and not any(r.search(name) for r in regexes)

  return jax.tree_util.tree_map_with_path(decays, params)


def make_optimizer(cfg, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Builds (optimizer, schedule) from `config.optimizer`; see the module docstring."""
  if cfg.name != "adamw":
    raise ValueError(f"unknown optimizer {cfg.name!r}; only 'adamw' is provided")
  schedule = make_schedule(cfg.schedule, float(cfg.learning_rate), total_steps,
                           warmup_steps=cfg.warmup_steps,
                           final_lr_ratio=float(cfg.final_lr_ratio))
  patterns = tuple(cfg.no_decay_patterns or ())
  adamw = optax.adamw(
      schedule, b1=float(cfg.b1), b2=float(cfg.b2), eps=float(cfg.eps),
      weight_decay=float(cfg.weight_decay), mask=lambda params: decay_mask(params, patterns))
  if cfg.clip_norm:
    return optax.chain(optax.clip_by_global_norm(float(cfg.clip_norm)), adamw), schedule
  return adamw, schedule
