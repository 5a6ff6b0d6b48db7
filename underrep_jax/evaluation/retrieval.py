"""Exemplar retrieval for in-context learning: random, word overlap, TF-IDF, dense, combined.

A `Retriever` is built once over a pool of texts and returns, per query, the indices of
the k most similar pool entries (most similar first; ties keep pool order).

Methods (X-ICL paper, SamuelCahyawijaya/in-context-alignment `SimpleDatasetIndexer`):
  random  k distinct entries, seeded per query;
  unique  Jaccard overlap of the lowercased word sets (the paper lowercased only the
          query and counted its punctuation marks as words; here both sides are
          lowercased and only words count);
  tfidf   cosine of TF-IDF vectors over 1-3-grams (`min_df`, `max_features` as the paper:
          3 and 10,000 in configs/xicl.py);
  dense   cosine of sentence embeddings (`DenseEncoder`).
A "+"-joined spec ("unique+tfidf+dense") ranks by the combined score: each method's
similarities are turned into a distribution over the pool by a softmax (temperature 1)
and the distributions are averaged, as the paper's indexer does. Unlike the paper's
code every method contributes a cosine (or Jaccard) in [-1, 1]: the paper divided TF-IDF
dot products by the pool row's L1 sum and SBERT dot products by the pool norm only, so
an unnormalised encoder's query norm sharpened its softmax; here no method gets extra
weight from the scale of its vectors.
"""

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.feature_extraction.text import TfidfVectorizer

METHODS = ("random", "unique", "tfidf", "dense")
SCORED_METHODS = ("unique", "tfidf", "dense")
# Word tokens for the overlap score: runs of word characters, any script.
_WORD_PATTERN = r"(?u)\w+"


def parse_methods(spec: str) -> tuple[str, ...]:
  """"unique+tfidf+dense" -> ("unique", "tfidf", "dense"); random stands alone."""
  methods = tuple(m.strip() for m in spec.split("+") if m.strip())
  unknown = [m for m in methods if m not in METHODS]
  if not methods or unknown:
    raise ValueError(f"unknown retrieval method {spec!r}; known: {', '.join(METHODS)}, or "
                     f"a '+'-joined combination of {', '.join(SCORED_METHODS)}")
  if len(methods) > 1 and "random" in methods:
    raise ValueError(f"retrieval {spec!r}: random has no scores to combine")
  if len(set(methods)) != len(methods):
    raise ValueError(f"retrieval {spec!r} names a method twice")
  return methods


class DenseEncoder:
  """Sentence embeddings from an encoder directory, by its own sentence-transformers
  pipeline (`models.sentence_encoder`: LaBSE's CLS + Dense + Normalize,
  stsb-xlm-r-multilingual's mean pooling, ...); a plain HF encoder gets L2-normalised
  mean pooling. Only real tokens are pooled (MiniLM's tokenizer.json pads to 128).

  `path`: a directory or Hub id (default all-MiniLM-L6-v2, English-only: for tests;
  cross-lingual retrieval wants a multilingual encoder); `max_tokens` overrides the
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


def _softmax(scores: np.ndarray) -> np.ndarray:
  shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
  return shifted / shifted.sum(axis=1, keepdims=True)


def _normalized(text: str) -> str:
  return " ".join(text.lower().split())


class Retriever:
  """Top-k pool indices per query by one retrieval method or a combination."""

  def __init__(self, method: str, pool: list[str], seed: int = 0, encoder=None,
               min_df: int | float = 1, max_features: int | None = None):
    self.methods = parse_methods(method)
    if not pool:
      raise ValueError("empty retrieval pool: no examples to draw from")
    self.method = method
    self.pool = list(pool)
    self.seed = seed
    self._pool_vectors = {}
    if "unique" in self.methods:
      self.word_vectorizer = CountVectorizer(binary=True, lowercase=True,
                                             token_pattern=_WORD_PATTERN)
      words = self.word_vectorizer.fit_transform(self.pool)
      self._pool_vectors["unique"] = (words, np.asarray(words.sum(axis=1)).ravel())
    if "tfidf" in self.methods:
      self.vectorizer = TfidfVectorizer(ngram_range=(1, 3), min_df=min_df,
                                        max_features=max_features or None)
      try:
        self._pool_vectors["tfidf"] = self.vectorizer.fit_transform(self.pool)
      except ValueError as e:  # sklearn: "After pruning, no terms remain", ...
        raise ValueError(f"TF-IDF over a pool of {len(self.pool)} texts with min_df={min_df}:"
                         f" {e}") from None
    if "dense" in self.methods:
      self._encoder = encoder or DenseEncoder()
      self._pool_vectors["dense"] = _unit(self._encoder(self.pool))

  def method_similarities(self, method: str, queries: list[str]) -> np.ndarray:
    """[queries, pool] similarities of one scored method."""
    if method == "unique":
      words, pool_sizes = self._pool_vectors["unique"]
      shared = (self.word_vectorizer.transform(queries) @ words.T).toarray()
      # Query words the pool never has count towards the union too.
      analyze = self.word_vectorizer.build_analyzer()
      query_sizes = np.array([[len(set(analyze(q)))] for q in queries])
      union = query_sizes + pool_sizes[None, :] - shared
      return np.where(union > 0, shared / np.maximum(union, 1), 0.0)
    if method == "tfidf":
      # TF-IDF rows are L2-normalised, so the dot product is the cosine.
      return (self.vectorizer.transform(queries) @ self._pool_vectors["tfidf"].T).toarray()
    if method == "dense":
      return _unit(self._encoder(queries)) @ self._pool_vectors["dense"].T
    raise ValueError(f"{method} retrieval has no similarities")

  def similarities(self, queries: list[str]) -> np.ndarray:
    """[queries, pool]: the one method's similarities, or the mean of the methods'
    softmax distributions over the pool (see the module docstring)."""
    if len(self.methods) == 1:
      return self.method_similarities(self.methods[0], queries)
    return np.mean([_softmax(self.method_similarities(m, queries)) for m in self.methods],
                   axis=0)

  def retrieve(self, queries: list[str], k: int, skip_identical: bool = False
               ) -> list[list[int]]:
    """k pool indices per query; `skip_identical` leaves out entries whose text is the
    query's own (case and spacing aside): a pool that contains the query, such as
    NusaTranslation-MT for NusaTranslation sentiment queries, would otherwise hand the
    model the query's own translation."""
    if k < 1:
      raise ValueError(f"k must be >= 1, got {k}")
    if self.methods == ("random",):
      order = [np.random.default_rng([self.seed, i]).permutation(len(self.pool))
               for i in range(len(queries))]
    else:
      order = np.argsort(-self.similarities(queries), axis=1, kind="stable")
    if not skip_identical:
      return [row[:k].tolist() for row in order]
    pool_keys = [_normalized(t) for t in self.pool]
    out = []
    for query, row in zip(queries, order):
      key = _normalized(query)
      out.append([int(i) for i in row if pool_keys[i] != key][:k])
    return out
