"""The encoder side of UniVaR: fixed-length tokenisation and mean-pooled embeddings.

Training feeds views as fixed [B, max_length] int32 arrays (one compiled step for the
whole run). Evaluation embeds thousands of single QAs, most far shorter than
`max_length`, so `embed_texts` sorts them by length and pads each chunk only to a
multiple of `_LENGTH_BUCKET` tokens: a few compiled shapes, far fewer padded positions.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tokenizers
import tqdm

from underrep_jax.univar import loss as loss_lib

_LENGTH_BUCKET = 32


def text_tokenizer(tokenizer: tokenizers.Tokenizer, max_length: int) -> tokenizers.Tokenizer:
  """A copy of `tokenizer` that truncates to `max_length` and does not pad.

  A copy, so that the model's own tokenizer settings (MiniLM's tokenizer.json pads and
  truncates to 128) neither leak into nor get changed by the job.
  """
  out = tokenizers.Tokenizer.from_str(tokenizer.to_str())
  out.no_padding()
  out.enable_truncation(max_length=max_length)
  return out


def _pad(encodings, length: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
  ids = np.full((len(encodings), length), pad_id, np.int32)
  mask = np.zeros((len(encodings), length), np.int32)
  for row, encoding in enumerate(encodings):
    n = min(len(encoding.ids), length)
    ids[row, :n] = encoding.ids[:n]
    mask[row, :n] = 1
  return ids, mask


def tokenize(tokenizer: tokenizers.Tokenizer, texts: Sequence[str], length: int,
             pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """(ids, attention mask), both int32 [len(texts), length]: truncated, right-padded.

  `tokenizer` should come from `text_tokenizer` (truncation at most `length`).
  """
  return _pad(tokenizer.encode_batch(list(texts)), length, pad_id)


def mean_pool(hidden: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean of the hidden states over real tokens, [B, T, D] -> [B, D], in float32."""
  weights = mask.astype(jnp.float32)[..., None]
  total = jnp.sum(hidden.astype(jnp.float32) * weights, axis=1)
  return total / jnp.maximum(jnp.sum(weights, axis=1), 1e-9)


def embed(module, params, input_ids, attention_mask, *, deterministic: bool = True,
          rng: jax.Array | None = None) -> jax.Array:
  """L2-normalised mean-pooled embeddings [B, D] of a BertEncoder (dropout when training)."""
  rngs = None if deterministic else {"dropout": rng}
  hidden, _ = module.apply({"params": params}, input_ids, attention_mask=attention_mask,
                           deterministic=deterministic, rngs=rngs)
  return loss_lib.l2_normalize(mean_pool(hidden, attention_mask))


class Embedder:
  """Embeds many texts with one module and params; one jitted function for all chunks."""

  def __init__(self, module, tokenizer: tokenizers.Tokenizer, max_length: int,
               batch_size: int = 64, pad_id: int = 0):
    self.module = module
    self.tokenizer = text_tokenizer(tokenizer, max_length)
    self.max_length = max_length
    self.batch_size = batch_size
    self.pad_id = pad_id
    self._embed = jax.jit(lambda p, ids, mask: embed(module, p, ids, mask))

  def __call__(self, params, texts: Sequence[str], desc: str = "embedding") -> np.ndarray:
    """[len(texts), D] float32 embeddings, in the order of `texts`."""
    texts = list(texts)
    if not texts:
      raise ValueError("nothing to embed")
    encodings = self.tokenizer.encode_batch(texts)
    order = np.argsort([len(e.ids) for e in encodings], kind="stable")
    out = None
    for start in tqdm.trange(0, len(texts), self.batch_size, desc=desc, unit="batch",
                             leave=False):
      rows = order[start:start + self.batch_size]
      longest = max(len(encodings[i].ids) for i in rows)
      length = min(-(-longest // _LENGTH_BUCKET) * _LENGTH_BUCKET, self.max_length)
      ids, mask = _pad([encodings[i] for i in rows], length, self.pad_id)
      pad_rows = self.batch_size - len(rows)  # a full batch keeps the compiled shapes few
      ids = np.pad(ids, ((0, pad_rows), (0, 0)), constant_values=self.pad_id)
      mask = np.pad(mask, ((0, pad_rows), (0, 0)))
      vectors = np.asarray(self._embed(params, ids, mask))[:len(rows)]
      if out is None:
        out = np.zeros((len(texts), vectors.shape[1]), np.float32)
      out[rows] = vectors
    return out
