"""Exemplar retrieval for in-context learning: random, TF-IDF (1-3-grams) or dense cosine.

A `Retriever` is built once over a pool of texts and returns, per query, the indices of
the k most similar pool entries (most similar first; ties keep pool order).
"""


import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

METHODS = ("random", "tfidf", "dense")


class DenseEncoder:
  """Mean-pooled, L2-normalised sentence embeddings from a model-zoo encoder.

  Built on `univar.encoder.Embedder`, which tokenizes without the checkpoint's own
  padding (MiniLM's tokenizer.json pads every text to 128 tokens) so that only real
  tokens are pooled.
  """

  def __init__(self, path=None, batch_size: int = 64, max_tokens: int = 128):
    from underrep_jax.models import hf
    from underrep_jax.univar import encoder
    self.model = hf.load(path or hf.minilm_path())
    self._embedder = encoder.Embedder(self.model.module, self.model.tokenizer, max_tokens,
                                      batch_size, int(self.model.module.config.pad_token_id))

  def __call__(self, texts: list[str]) -> np.ndarray:
    return self._embedder(self.model.params, texts)


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
      self._pool_vectors = self._encoder(self.pool)

  def similarities(self, queries: list[str]) -> np.ndarray:
    """[queries, pool] cosine similarities (tfidf/dense)."""
    if self.method == "tfidf":
      # TF-IDF rows are L2-normalised, so the dot product is the cosine.
      return (self._vectorizer.transform(queries) @ self._pool_vectors.T).toarray()
    if self.method == "dense":
      return self._encoder(queries) @ self._pool_vectors.T
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
