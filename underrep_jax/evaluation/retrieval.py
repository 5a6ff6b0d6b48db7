"""Exemplar retrieval for in-context learning: random, TF-IDF (1-3-grams) or dense cosine.

A `Retriever` is built once over a pool of texts and returns, per query, the indices of
the k most similar pool entries (most similar first; ties keep pool order).
"""


import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

METHODS = ("random", "tfidf", "dense")


class DenseEncoder:
  """Sentence embeddings from an encoder directory, by its own sentence-transformers
  pipeline (`models.sentence_encoder`: LaBSE's CLS + Dense + Normalize,
  stsb-xlm-r-multilingual's mean pooling, ...); a plain HF encoder gets L2-normalised
  mean pooling. Only real tokens are pooled (MiniLM's tokenizer.json pads to 128).

  `path`: a directory or Hub id (default all-MiniLM-L6-v2); `max_tokens` overrides the
  directory's max_seq_length.
  """

  def __init__(self, path=None, batch_size: int = 64, max_tokens: int | None = None):
    from underrep_jax.models import hf
    from underrep_jax.models import sentence_encoder
    self._encoder = sentence_encoder.SentenceEncoder(path or hf.minilm_path(), batch_size,
                                                     max_tokens)
    self.model = self._encoder.model

  def __call__(self, texts: list[str]) -> np.ndarray:
    return self._encoder(texts)


def _unit(vectors: np.ndarray) -> np.ndarray:
  """Rows scaled to length 1 (not every encoder normalises), so dot products are cosines."""
  return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


class Retriever:
  """Top-k pool indices per query by one retrieval method."""

  def __init__(self, method: str, pool: list[str], seed: int = 0, encoder=None):
    if method not in METHODS:
      raise ValueError(f"unknown retrieval method {method!r}; known: {', '.join(METHODS)}")
    if not pool:
      raise ValueError("empty retrieval pool: no labelled examples to draw exemplars from")
    self.method = method
    self.pool = list(pool)
    self.seed = seed
    if method == "tfidf":
      self._vectorizer = TfidfVectorizer(ngram_range=(1, 3))
      self._pool_vectors = self._vectorizer.fit_transform(self.pool)
    elif method == "dense":
      self._encoder = encoder or DenseEncoder()
      self._pool_vectors = _unit(self._encoder(self.pool))

  def similarities(self, queries: list[str]) -> np.ndarray:
    """[queries, pool] cosine similarities (tfidf/dense)."""
    if self.method == "tfidf":
      # TF-IDF rows are L2-normalised, so the dot product is the cosine.
      return (self._vectorizer.transform(queries) @ self._pool_vectors.T).toarray()
    if self.method == "dense":
      return _unit(self._encoder(queries)) @ self._pool_vectors.T
    raise ValueError("random retrieval has no similarities")

  def retrieve(self, queries: list[str], k: int) -> list[list[int]]:
    if k < 1:
      raise ValueError(f"k must be >= 1, got {k}")
    k = min(k, len(self.pool))
    if self.method == "random":
      return [np.random.default_rng([self.seed, i]).choice(len(self.pool), k, replace=False)
              .tolist() for i in range(len(queries))]
    sims = self.similarities(queries)
    order = np.argsort(-sims, axis=1, kind="stable")
    return order[:, :k].tolist()
