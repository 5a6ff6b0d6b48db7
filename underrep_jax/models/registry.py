"""The model families, and building a module from a family name and a config.

A config may be the family's config dataclass, a dict of its fields (for small
from-scratch presets), or a Hugging Face config (a dict with 'model_type', or a
transformers PretrainedConfig).
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from underrep_jax.models import bert
from underrep_jax.models import bloom
from underrep_jax.models import llama
from underrep_jax.models import t5
from underrep_jax.models import xglm


@dataclasses.dataclass(frozen=True)
class Family:
  name: str
  kind: str                      # "decoder", "encoder_decoder" or "encoder"
  config_cls: type
  module_cls: type
  model_types: tuple[str, ...]   # HF model_type values this family loads


FAMILIES = {f.name: f for f in (
    Family("bloom", "decoder", bloom.BloomConfig, bloom.Bloom, ("bloom",)),
    Family("llama", "decoder", llama.LlamaConfig, llama.Llama, tuple(llama.MODEL_TYPES)),
    Family("xglm", "decoder", xglm.XGLMConfig, xglm.XGLM, ("xglm",)),
    Family("t5", "encoder_decoder", t5.T5Config, t5.T5, ("t5", "mt5")),
    Family("bert", "encoder", bert.BertConfig, bert.BertEncoder, tuple(bert.MODEL_TYPES)),
)}

# Aliases accepted by `build`: the HF model_type names.
_ALIASES = {t: f.name for f in FAMILIES.values() for t in f.model_types}


def get_family(name: str) -> Family:
  key = _ALIASES.get(name, name)
  if key not in FAMILIES:
    raise ValueError(f"unknown model family {name!r}; known: {sorted(FAMILIES)} "
                     f"and HF model types {sorted(_ALIASES)}")
  return FAMILIES[key]


def family_for_model_type(model_type: str) -> Family:
  if model_type not in _ALIASES:
    raise ValueError(f"unsupported HF model_type {model_type!r}; supported: {sorted(_ALIASES)}")
  return FAMILIES[_ALIASES[model_type]]


def make_config(family: Family, config: Any, **overrides):
  """The family config from a dataclass, a dict of its fields or an HF config."""
  if hasattr(config, "to_dict") and not isinstance(config, dict):  # a transformers config
    config = config.to_dict()
  fields = {f.name for f in dataclasses.fields(family.config_cls)}
  if isinstance(config, family.config_cls):
    out = config
  elif isinstance(config, dict) and set(config) <= fields:
    out = family.config_cls(**config)
  elif isinstance(config, dict):
    out = family.config_cls.from_hf(config)
  else:
    raise TypeError(f"cannot make a {family.name} config from {type(config).__name__}")
  return dataclasses.replace(out, **overrides) if overrides else out


def as_dtype(dtype) -> jnp.dtype:
  return jnp.dtype(dtype)


def build(family: str, config: Any, dtype="float32", param_dtype="float32",
          remat: bool | None = None) -> nn.Module:
  """A Flax module of `family` ('bloom', 'llama', 'xglm', 't5', 'bert' or an HF model_type).

  `dtype` is the compute dtype, `param_dtype` the stored one; `remat` wraps each layer
  in `nn.remat` (recompute activations in the backward pass); None keeps the config's.
  """
  fam = get_family(family)
  cfg = make_config(fam, config, **({} if remat is None else {"remat": remat}))
  return fam.module_cls(cfg, dtype=as_dtype(dtype), param_dtype=as_dtype(param_dtype))


def family_of(module: nn.Module) -> Family:
  for fam in FAMILIES.values():
    if isinstance(module, fam.module_cls):
      return fam
  raise TypeError(f"{type(module).__name__} is not a model zoo module")
