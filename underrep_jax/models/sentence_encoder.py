"""Sentence embeddings the way a sentence-transformers directory defines them.

A sentence-transformers (ST) directory lists its pipeline in `modules.json`: a
Transformer (an HF encoder, with `sentence_bert_config.json`: max_seq_length,
do_lower_case), then Pooling (`1_Pooling/config.json`), optional Dense layers
(`2_Dense/config.json` + `model.safetensors`, with an activation) and Normalize. LaBSE is
CLS + Dense(tanh) + Normalize, stsb-xlm-r-multilingual mean pooling, all-MiniLM-L6-v2
mean + Normalize. `read_head` reads that pipeline (ST 2.x-5.x boolean pooling keys and
the 6.x `pooling_mode` alike); `SentenceEncoder` embeds texts with it, so a directory
embeds as `sentence_transformers.SentenceTransformer(dir).encode` does. A plain HF
encoder directory (no modules.json) gets mean pooling + L2 normalisation.

`Embedder` runs many texts through one module: batched by length, each batch padded
only to a multiple of `LENGTH_BUCKET` tokens (`models.batching`: a few compiled shapes,
little padding), tokenized without the checkpoint's own padding (MiniLM's tokenizer.json
pads to 128).
"""

from collections.abc import Sequence
import dataclasses
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from underrep_jax.models import batching

LENGTH_BUCKET = 32
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens")
# ST 2.x-5.x pooling config: one boolean per mode.
_LEGACY_POOLING_KEYS = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
                        "pooling_mode_mean_tokens": "mean",
                        "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                        "pooling_mode_weightedmean_tokens": "weightedmean",
                        "pooling_mode_lasttoken": "lasttoken"}
# sentence_<kind>_config.json names ST has used for the Transformer's settings, in its order.
_ST_CONFIG_KINDS = ("bert", "roberta", "distilbert", "camembert", "albert", "xlm-roberta",
                    "xlnet")
# RoBERTa-style position tables start after the pad id (XLM-R: 514 rows, 512 tokens).
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert")
# torch activation class (as ST saves its full name) -> the same function in JAX.
ACTIVATIONS = {"Tanh": jnp.tanh, "Identity": lambda x: x, "ReLU": jax.nn.relu,
               "Sigmoid": jax.nn.sigmoid, "GELU": lambda x: jax.nn.gelu(x, approximate=False)}


class SentenceEncoderError(ValueError):
  """A sentence-transformers directory whose pipeline this module cannot follow."""


@dataclasses.dataclass(frozen=True)
class Dense:
  """y = activation(x @ kernel + bias); kernel [in, out] (ST stores nn.Linear's [out, in])."""
  kernel: np.ndarray
  bias: np.ndarray | None
  activation: str


@dataclasses.dataclass(frozen=True)
class Head:
  """What follows the transformer: pooling (modes concatenated, as ST does), dense layers,
  L2 normalisation; and how texts are cut (tokens incl. specials) and cased."""
  pooling: tuple[str, ...] = ("mean",)
  dense: tuple[Dense, ...] = ()
  normalize: bool = True
  max_seq_length: int | None = None
  do_lower_case: bool = False


MEAN_NORMALIZED = Head()


def _read_json(file: pathlib.Path) -> dict:
  try:
    return json.loads(file.read_text(encoding="utf-8"))
  except (OSError, json.JSONDecodeError) as error:
    raise SentenceEncoderError(f"{file}: unreadable ({error})") from None


def _pooling(file: pathlib.Path) -> tuple[str, ...]:
  config = _read_json(file)
  modes = config.get("pooling_mode")
  if modes is None:
    modes = [mode for key, mode in _LEGACY_POOLING_KEYS.items() if config.get(key)]
  modes = (modes,) if isinstance(modes, str) else tuple(modes)
  if not modes or any(m not in POOLING_MODES for m in modes):
    raise SentenceEncoderError(f"{file}: pooling {list(modes)} is not supported; expected "
                               f"one or more of {', '.join(POOLING_MODES)}")
  if config.get("include_prompt") is False:
    raise SentenceEncoderError(f"{file}: include_prompt=false (prompt tokens left out of "
                               "pooling) is not supported")
  return modes


def _dense(directory: pathlib.Path) -> Dense:
  config = _read_json(directory / "config.json")
  activation = str(config.get("activation_function", "torch.nn.modules.linear.Identity"))
  name = activation.rsplit(".", 1)[-1]
  if name not in ACTIVATIONS:
    raise SentenceEncoderError(f"{directory / 'config.json'}: activation_function "
                               f"{activation!r} is not supported; known: {', '.join(ACTIVATIONS)}")
  if config.get("use_residual"):
    raise SentenceEncoderError(f"{directory / 'config.json'}: use_residual is not supported")
  weights = directory / "model.safetensors"
  if not weights.is_file():
    if (directory / "pytorch_model.bin").is_file():
      raise SentenceEncoderError(
          f"{directory / 'pytorch_model.bin'}: pickled weights are refused; convert them "
          f"first: python -m underrep_jax.models.convert {directory}")
    raise SentenceEncoderError(f"{directory}: no model.safetensors for the Dense layer")
  from safetensors.numpy import load_file
  tensors = load_file(str(weights))
  if "linear.weight" not in tensors:
    raise SentenceEncoderError(f"{weights}: no tensor 'linear.weight' (has {sorted(tensors)})")
  kernel = np.ascontiguousarray(tensors["linear.weight"].T.astype(np.float32))
  bias = tensors.get("linear.bias")
  expected = (config.get("in_features"), config.get("out_features"))
  if None not in expected and kernel.shape != expected:
    raise SentenceEncoderError(f"{weights}: linear.weight is {kernel.shape[::-1]}, config says "
                               f"[out_features, in_features] = {expected[::-1]}")
  return Dense(kernel, None if bias is None else bias.astype(np.float32), name)


def _max_seq_length(transformer_dir: pathlib.Path) -> tuple[int | None, bool]:
  """(max tokens incl. specials, do_lower_case) as ST's Transformer module settles them."""
  # ST 6 bakes do_lower_case into the saved tokenizer.json; older ST keeps both here.
  names = [f"sentence_{kind}_config.json" for kind in _ST_CONFIG_KINDS]
  found = [transformer_dir / n for n in names if (transformer_dir / n).is_file()]
  config = _read_json(found[0]) if found else {}
  do_lower_case = bool(config.get("do_lower_case", False))
  if config.get("max_seq_length"):
    return int(config["max_seq_length"]), do_lower_case
  # ST 6 keeps it as the tokenizer's model_max_length, capped at the position table.
  limit = None
  tokenizer_config = transformer_dir / "tokenizer_config.json"
  if tokenizer_config.is_file():
    value = _read_json(tokenizer_config).get("model_max_length")
    limit = int(value) if isinstance(value, (int, float)) and value < 1e9 else None
  model_config = _read_json(transformer_dir / "config.json") if (
      transformer_dir / "config.json").is_file() else {}
  positions = model_config.get("max_position_embeddings")
  if positions and model_config.get("model_type") in _OFFSET_POSITIONS:
    positions -= int(model_config.get("pad_token_id") or 0) + 1  # rows before the first
  if positions is not None and positions > 0:
    limit = positions if limit is None else min(limit, positions)
  return limit, do_lower_case


def read_head(directory) -> tuple[pathlib.Path, Head]:
  """(the transformer's directory, the head) of an ST directory; a plain HF encoder
  directory is its own transformer with `MEAN_NORMALIZED`."""
  directory = pathlib.Path(directory)
  modules_file = directory / "modules.json"
  if not modules_file.is_file():
    return directory, MEAN_NORMALIZED
  modules = sorted(_read_json(modules_file), key=lambda m: int(m.get("idx", 0)))
  transformer_dir, pooling, dense, normalize = None, None, [], False
  for module in modules:
    kind = str(module.get("type", "")).rsplit(".", 1)[-1]
    path = directory / module.get("path", "")
    if kind == "Transformer" and transformer_dir is None and pooling is None:
      transformer_dir = path
    elif kind == "Pooling" and pooling is None and transformer_dir is not None:
      pooling = _pooling(path / "config.json")
    elif kind == "Dense" and pooling is not None and not normalize:
      dense.append(_dense(path))
    elif kind == "Normalize" and pooling is not None:
      normalize = True
    else:
      raise SentenceEncoderError(
          f"{modules_file}: module {module.get('type')!r} at position {module.get('idx')} is "
          "not supported; expected Transformer, Pooling, then optional Dense and Normalize")
  if transformer_dir is None or pooling is None:
    raise SentenceEncoderError(f"{modules_file}: needs a Transformer and a Pooling module")
  max_seq_length, do_lower_case = _max_seq_length(transformer_dir)
  return transformer_dir, Head(pooling=pooling, dense=tuple(dense), normalize=normalize,
                               max_seq_length=max_seq_length, do_lower_case=do_lower_case)


# ---------------------------------------------------------------------------------------
# The head in JAX.


def pool(hidden: jax.Array, mask: jax.Array, modes: Sequence[str] = ("mean",)) -> jax.Array:
  """[B, T, D] hidden states over real tokens -> [B, D * len(modes)], in float32."""
  hidden = hidden.astype(jnp.float32)
  weights = mask.astype(jnp.float32)[..., None]
  count = jnp.maximum(jnp.sum(weights, axis=1), 1e-9)
  out = []
  for mode in modes:
    if mode == "cls":  # the first real token ([CLS] / <s>), wherever padding is
      first = jnp.argmax(mask, axis=1)
      out.append(jnp.take_along_axis(hidden, first[:, None, None], axis=1)[:, 0])
    elif mode == "max":
      out.append(jnp.max(jnp.where(weights > 0, hidden, -jnp.inf), axis=1))
    elif mode == "mean":
      out.append(jnp.sum(hidden * weights, axis=1) / count)
    elif mode == "mean_sqrt_len_tokens":
      out.append(jnp.sum(hidden * weights, axis=1) / jnp.sqrt(count))
    else:
      raise ValueError(f"unknown pooling mode {mode!r}; known: {', '.join(POOLING_MODES)}")
  return out[0] if len(out) == 1 else jnp.concatenate(out, axis=-1)


def l2_normalize(x: jax.Array) -> jax.Array:
  """x / max(||x||, 1e-12), as torch.nn.functional.normalize."""
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def apply_head(head: Head, hidden: jax.Array, mask: jax.Array) -> jax.Array:
  x = pool(hidden, mask, head.pooling)
  for layer in head.dense:
    x = x @ layer.kernel
    if layer.bias is not None:
      x = x + layer.bias
    x = ACTIVATIONS[layer.activation](x)
  return l2_normalize(x) if head.normalize else x


# ---------------------------------------------------------------------------------------
# Tokenizing and batching.


def text_tokenizer(tokenizer, max_length: int, lowercase: bool = False):
  """A `tokenizers.Tokenizer` copy of `tokenizer` (one from `hf.load_tokenizer`, or a
  `tokenizers.Tokenizer`) that truncates to `max_length` tokens, specials included, and
  does not pad; with `lowercase`, texts are lowercased first (ST's do_lower_case).

  A copy, so that the model's own settings neither leak into nor get changed by the job.
  """
  import tokenizers
  if getattr(tokenizer, "kind", "fast") != "fast":
    raise ValueError(f"{tokenizer.file}: embedding needs a tokenizer.json (its special-token "
                     "template); a SentencePiece model alone does not say where [CLS]/<s> go")
  out = tokenizers.Tokenizer.from_str(tokenizer.to_str())
  out.no_padding()
  out.enable_truncation(max_length=max_length)
  if lowercase:
    steps = [tokenizers.normalizers.Lowercase()]
    if out.normalizer is not None:
      steps.append(out.normalizer)
    out.normalizer = tokenizers.normalizers.Sequence(steps)
  return out


def hidden_states(module, params, input_ids, attention_mask, *, deterministic: bool = True,
                  rng: jax.Array | None = None) -> jax.Array:
  """The encoder's last hidden states [B, T, D] (dropout when not deterministic)."""
  rngs = None if deterministic else {"dropout": rng}
  hidden, _ = module.apply({"params": params}, input_ids, attention_mask=attention_mask,
                           deterministic=deterministic, rngs=rngs)
  return hidden


class Embedder:
  """Embeds many texts with one encoder module and a head; one jitted function for all."""

  def __init__(self, module, tokenizer, max_length: int, batch_size: int = 64, pad_id: int = 0,
               head: Head = MEAN_NORMALIZED):
    self.module = module
    self.head = head
    self.tokenizer = text_tokenizer(tokenizer, max_length, head.do_lower_case)
    self.max_length = max_length
    self.batch_size = batch_size
    self.pad_id = pad_id
    self._embed = jax.jit(lambda p, ids, mask: apply_head(
        head, hidden_states(module, p, ids, mask), mask))

  def __call__(self, params, texts: Sequence[str], desc: str = "embedding") -> np.ndarray:
    """[len(texts), D] float32 embeddings, in the order of `texts`."""
    texts = list(texts)
    if not texts:
      raise ValueError("nothing to embed")
    rows = [e.ids for e in self.tokenizer.encode_batch(texts)]
    out = None
    for indices, ids, mask in batching.padded_batches(
        rows, self.batch_size, LENGTH_BUCKET, self.max_length, self.pad_id, desc=desc):
      vectors = np.asarray(self._embed(params, ids, mask))[:len(indices)]
      if out is None:
        out = np.zeros((len(texts), vectors.shape[1]), np.float32)
      out[indices] = vectors
    return out


class SentenceEncoder:
  """`SentenceTransformer(path).encode(texts)` in JAX: the directory's own pipeline.

  `path`: an ST directory, a plain HF encoder directory, or a Hub id (`models.hub`).
  `max_length` overrides the directory's max_seq_length (tokens, specials included).
  """

  def __init__(self, path, batch_size: int = 64, max_length: int | None = None,
               dtype: str = "float32", revision: str | None = None):
    from underrep_jax.models import hf
    from underrep_jax.models import hub
    directory = hub.resolve(path, revision)
    transformer_dir, self.head = read_head(directory)
    self.model = hf.load(transformer_dir, dtype=dtype)
    if self.model.kind != "encoder":
      raise SentenceEncoderError(f"{transformer_dir}: a {self.model.family} model is not an "
                                 "encoder; sentence embeddings need a BERT-family checkpoint")
    positions = int(self.model.module.config.max_position_embeddings)
    self.max_length = int(max_length or self.head.max_seq_length or positions)
    self._embedder = Embedder(self.model.module, self.model.tokenizer, self.max_length,
                              batch_size, self.model.ids.pad, self.head)

  def __call__(self, texts: Sequence[str], desc: str = "embedding") -> np.ndarray:
    return self._embedder(self.model.params, texts, desc)
