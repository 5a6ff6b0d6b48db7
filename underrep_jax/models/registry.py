"""The model families, and building a module from a family name and a config.

A config may be the family's config dataclass, a dict of its fields (for small
from-scratch presets), or a Hugging Face config (a dict with 'model_type', or a
transformers PretrainedConfig). HF dicts go through transformers' own config class,
which resolves the attribute aliases published checkpoints use (BLOOM's `n_embed`,
`num_attention_heads`, ...), so each family's `from_hf` reads one normalised object.
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from underrep_jax import errors
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

_MODULES = {"bloom": bloom, "llama": llama, "xglm": xglm, "t5": t5, "bert": bert}

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


def supported_model_types() -> list[str]:
  return sorted(_ALIASES)


def config_aliases(model_type: str) -> list[frozenset[str]]:
  """Groups of config.json keys that name one quantity for this model_type.

  From transformers' `attribute_map` (e.g. BLOOM num_attention_heads -> n_head), the
  family's own `HF_ALIASES` (keys its config class pops in __init__, e.g. BLOOM
  n_embed -> hidden_size). Not `torch_dtype`/`dtype`: a storage hint, which older exports
  left disagreeing; `hf.save` writes `dtype` alone.
  """
  import transformers
  pairs = dict(transformers.CONFIG_MAPPING[model_type].attribute_map)
  family = family_for_model_type(model_type)
  pairs.update(getattr(_MODULES[family.name], "HF_ALIASES", {}))
  groups: dict[str, set[str]] = {}
  for alias, canonical in pairs.items():
    group = groups.get(canonical, {canonical}) | groups.get(alias, set()) | {alias}
    for key in group:
      groups[key] = group
  return sorted({frozenset(g) for g in groups.values()}, key=sorted)


def check_aliases(hf: dict[str, Any], where: str) -> None:
  """One-line error when a config gives one quantity twice with different values."""
  for group in config_aliases(hf["model_type"]):
    present = {k: hf[k] for k in sorted(group) if k in hf and hf[k] is not None}
    if len({repr(v) for v in present.values()}) > 1:
      raise ValueError(f"{where}: conflicting aliases {present}; these keys name one setting, "
                       "give it once (or the same value)")


def hf_config_object(hf: dict[str, Any], where: str = "HF config"):
  """transformers' config object for an HF config dict (aliases resolved, defaults filled)."""
  import transformers
  if hf.get("model_type") not in _ALIASES:
    raise ValueError(f"{where}: unsupported model_type {hf.get('model_type')!r}; "
                     f"supported: {supported_model_types()}")
  check_aliases(hf, where)
  fields = {k: v for k, v in hf.items() if k != "model_type"}
  return transformers.AutoConfig.for_model(hf["model_type"], **fields)


def make_config(family: Family, config: Any, **overrides):
  """The family config from a dataclass, a dict of its fields or an HF config."""
  fields = {f.name for f in dataclasses.fields(family.config_cls)}
  if isinstance(config, family.config_cls):
    out = config
  elif isinstance(config, dict) and set(config) <= fields:
    out = family.config_cls(**config)
  elif isinstance(config, dict):
    out = family.config_cls.from_hf(hf_config_object(config))
  elif hasattr(config, "to_dict") and hasattr(config, "model_type"):  # a transformers config
    out = family.config_cls.from_hf(config)
  else:
    raise TypeError(f"cannot make a {family.name} config from {type(config).__name__}")
  return dataclasses.replace(out, **overrides) if overrides else out


def as_dtype(dtype) -> jnp.dtype:
  return jnp.dtype(dtype)


def can_scan(family: Family) -> bool:
  """Whether the family can run its layers as one scan (its config has `scan_layers`)."""
  return any(f.name == "scan_layers" for f in dataclasses.fields(family.config_cls))


def check_scan_layers(family: Family, scan_layers: bool | None) -> None:
  """One-line error when `scan_layers=True` is asked of a family that cannot scan."""
  if scan_layers and not can_scan(family):
    scanning = [f.name for f in FAMILIES.values() if can_scan(f)]
    raise ValueError(f"{family.name} cannot scan its layers (scan_layers=True); "
                     f"only {scanning} can")


# `attention` implementations (`layers.attention`) and the families that can take each:
# the Pallas kernels have no additive bias (ALiBi, T5's relative positions) and only a
# causal mask, so of the families only Llama (Mistral, Qwen2) can use them.
ATTENTION = {"xla": tuple(FAMILIES), "cudnn": tuple(FAMILIES), "splash": ("llama",)}


def check_attention(family: Family, attention: str | None) -> None:
  """One-line error for an unknown `attention` or one the family cannot use."""
  if attention is None:
    return
  if attention not in ATTENTION:
    raise errors.ConfigError(f"model.attention={attention!r}: known are {sorted(ATTENTION)}")
  if family.name not in ATTENTION[attention]:
    raise errors.ConfigError(
        f"model.attention={attention!r} is for causal attention without a bias (families "
        f"{list(ATTENTION[attention])}); {family.name} needs its attention bias or mask: "
        "use 'xla' or 'cudnn'")


def build(family: str, config: Any, dtype="float32", param_dtype="float32",
          remat: bool | None = None, scan_layers: bool | None = None,
          attention: str | None = None) -> nn.Module:
  """A Flax module of `family` ('bloom', 'llama', 'xglm', 't5', 'bert' or an HF model_type).

  `dtype` is the compute dtype, `param_dtype` the stored one; `remat` wraps each layer
  in `nn.remat` (recompute activations in the backward pass); `scan_layers` (decoder-only
  families) runs the layers as one `nn.scan` over stacked parameters, which compiles one
  layer instead of num_layers; `attention` picks `layers.attention`'s implementation
  ("xla", "cudnn", "splash"; `ATTENTION` says which family takes which); None keeps the
  config's.
  """
  fam = get_family(family)
  check_scan_layers(fam, scan_layers)
  check_attention(fam, attention)
  overrides = {} if remat is None else {"remat": remat}
  if attention is not None:
    overrides["attention"] = attention
  if scan_layers is not None and can_scan(fam):
    overrides["scan_layers"] = scan_layers
  cfg = make_config(fam, config, **overrides)
  return fam.module_cls(cfg, dtype=as_dtype(dtype), param_dtype=as_dtype(param_dtype))


def family_of(module: nn.Module) -> Family:
  for fam in FAMILIES.values():
    if isinstance(module, fam.module_cls):
      return fam
  raise TypeError(f"{type(module).__name__} is not a model zoo module")
