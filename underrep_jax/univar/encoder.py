"""The encoder side of UniVaR: fixed-length tokenisation and mean-pooled embeddings.

Training feeds views as fixed [B, max_length] int32 arrays (one compiled step for the
whole run). Evaluation embeds thousands of single QAs through `Embedder`, which lives in
the model layer (`models.sentence_encoder`, with the length bucketing) and is re-exported
here. UniVaR's embedding is L2-normalised mean pooling (the method's), in training and
evaluation alike, whatever head the encoder's sentence-transformers directory declares.
"""

from collections.abc import Sequence

import jax
import numpy as np
import tokenizers

from underrep_jax.models import batching
from underrep_jax.models import sentence_encoder
from underrep_jax.models.sentence_encoder import Embedder  # noqa: F401  (re-exported)
from underrep_jax.models.sentence_encoder import text_tokenizer  # noqa: F401  (re-exported)
from underrep_jax.univar import loss as loss_lib


def tokenize(tokenizer: tokenizers.Tokenizer, texts: Sequence[str], length: int,
             pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """(ids, attention mask), both int32 [len(texts), length]: truncated, right-padded.

  `tokenizer` should come from `text_tokenizer` (truncation at most `length`).
  """
  return batching.pad_rows([e.ids for e in tokenizer.encode_batch(list(texts))], length, pad_id)


def mean_pool(hidden: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean of the hidden states over real tokens, [B, T, D] -> [B, D], in float32."""
  return sentence_encoder.pool(hidden, mask, ("mean",))


def embed(module, params, input_ids, attention_mask, *, deterministic: bool = True,
          rng: jax.Array | None = None) -> jax.Array:
  """L2-normalised mean-pooled embeddings [B, D] of a BertEncoder (dropout when training)."""
  hidden = sentence_encoder.hidden_states(module, params, input_ids, attention_mask,
                                          deterministic=deterministic, rng=rng)
  return loss_lib.l2_normalize(mean_pool(hidden, attention_mask))
