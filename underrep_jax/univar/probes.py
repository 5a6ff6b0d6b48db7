"""Identity probes: which (LLM, language) produced this single QA?

The paper's evaluation embeds each QA alone with a frozen encoder and trains two probes
on the train split's embeddings, scored on the test split:
- k-NN (scikit-learn, cosine, k=50): accuracy and weighted F1;
- a linear softmax probe (optax Adam, lr 2e-3, batch 512, 20 epochs): Acc@1/@5/@10.
A TF-IDF baseline (scikit-learn) runs the same probes on bag-of-words features.

Features may be dense arrays or scipy sparse matrices (TF-IDF); the linear probe makes
each minibatch dense on its own, so a large vocabulary never becomes one dense matrix.
`evaluate_and_write` takes name -> (train features, test features) so the job decides
which encoders to compare, and writes `univar_eval.json`.
"""

from collections.abc import Mapping, Sequence
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import sparse
from sklearn import metrics as skm
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.neighbors import KNeighborsClassifier

EVAL_FILE = "univar_eval.json"
METRICS = ("knn_acc", "knn_weighted_f1", "linear_acc@1", "linear_acc@5", "linear_acc@10")
TOP_K = (1, 5, 10)
_PREDICT_CHUNK = 4096


def _check(train_x, train_y: Sequence[str], test_x, test_y: Sequence[str]) -> None:
  if train_x.shape[0] != len(train_y) or test_x.shape[0] != len(test_y):
    raise ValueError(f"features and labels disagree: train {train_x.shape[0]} vs "
                     f"{len(train_y)}, test {test_x.shape[0]} vs {len(test_y)}")
  if not len(train_y) or not len(test_y):
    raise ValueError("the probes need at least one train and one test example")


def knn_probe(train_x, train_y: Sequence[str], test_x, test_y: Sequence[str],
              k: int = 50) -> dict[str, float]:
  """Cosine k-NN: accuracy and weighted F1; k is capped at the number of train examples."""
  _check(train_x, train_y, test_x, test_y)
  knn = KNeighborsClassifier(n_neighbors=min(k, len(train_y)), metric="cosine")
  knn.fit(train_x, np.asarray(train_y))
  predicted = knn.predict(test_x)
  return {
      "knn_acc": float(skm.accuracy_score(test_y, predicted)),
      "knn_weighted_f1": float(skm.f1_score(test_y, predicted, average="weighted",
                                            zero_division=0)),
  }


def _dense(x, rows) -> np.ndarray:
  part = x[rows]
  return (part.toarray() if sparse.issparse(part) else np.asarray(part)).astype(np.float32)


def _cross_entropy(params, x, y, weight):
  logits = x @ params["w"] + params["b"]
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
  return jnp.sum(losses * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def linear_probe(train_x, train_y: Sequence[str], test_x, test_y: Sequence[str], *,
                 learning_rate: float = 2e-3, batch_size: int = 512, epochs: int = 20,
                 seed: int = 0) -> dict[str, float]:
  """Softmax regression trained with Adam; Acc@1/@5/@10 on the test split.

  Weights start at zero (the problem is convex), and the seed fixes the shuffling, so
  the result is deterministic. The last partial batch is padded and masked, so one
  compiled step serves every batch. A test label never seen in training counts as a
  miss, and Acc@k with k >= the number of classes is 1 for seen labels.
  """
  _check(train_x, train_y, test_x, test_y)
  classes = sorted(set(train_y))
  index = {c: i for i, c in enumerate(classes)}
  y_train = np.asarray([index[c] for c in train_y], np.int32)
  y_test = np.asarray([index.get(c, -1) for c in test_y], np.int32)
  dim = train_x.shape[1]
  params = {"w": jnp.zeros((dim, len(classes)), jnp.float32),
            "b": jnp.zeros((len(classes),), jnp.float32)}
  optimizer = optax.adam(learning_rate)
  opt_state = optimizer.init(params)

  @jax.jit
  def step(params, opt_state, x, y, weight):
    grads = jax.grad(_cross_entropy)(params, x, y, weight)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  rng = np.random.default_rng(seed)
  n = len(y_train)
  for _ in range(epochs):
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
      rows = order[start:start + batch_size]
      pad = batch_size - len(rows)
      x = np.pad(_dense(train_x, rows), ((0, pad), (0, 0)))
      y = np.pad(y_train[rows], (0, pad))
      weight = np.pad(np.ones(len(rows), np.float32), (0, pad))
      params, opt_state = step(params, opt_state, x, y, weight)

  ranks = []
  for start in range(0, len(y_test), _PREDICT_CHUNK):
    rows = np.arange(start, min(start + _PREDICT_CHUNK, len(y_test)))
    logits = np.asarray(_dense(test_x, rows) @ params["w"] + params["b"])
    y = y_test[rows]
    true_logit = np.take_along_axis(logits, np.maximum(y, 0)[:, None], axis=1)
    # 0 = the true class is the top guess. Ties (common early in Adam training, whose
    # sign-like steps give classes equal weights) go to the lower class index, as a
    # stable descending sort would order them.
    earlier = np.arange(logits.shape[1])[None, :] < y[:, None]
    rank = np.sum((logits > true_logit) | ((logits == true_logit) & earlier), axis=1)
    ranks.append(np.where(y >= 0, rank, np.iinfo(np.int32).max))
  rank = np.concatenate(ranks)
  return {f"linear_acc@{k}": float(np.mean(rank < k)) for k in TOP_K}


def run_probes(train_x, train_y: Sequence[str], test_x, test_y: Sequence[str], *, k: int = 50,
               seed: int = 0, **linear_kwargs) -> dict[str, float]:
  """All five metrics of one feature set (the keys in METRICS)."""
  out = knn_probe(train_x, train_y, test_x, test_y, k=k)
  out.update(linear_probe(train_x, train_y, test_x, test_y, seed=seed, **linear_kwargs))
  return out


def tfidf_features(train_texts: Sequence[str], test_texts: Sequence[str],
                   max_features: int | None = 20_000, **vectorizer_kwargs):
  """TF-IDF (sparse) features of the QA texts, the vocabulary fitted on train only.

  `max_features` keeps the most frequent terms: the linear probe's weights and dense
  minibatches grow with the vocabulary (SpeechMap's essays in 3 languages have >100k).
  """
  vectorizer = TfidfVectorizer(max_features=max_features, **vectorizer_kwargs)
  return vectorizer.fit_transform(train_texts), vectorizer.transform(test_texts)


def evaluate(features: Mapping[str, tuple[object, object]], train_labels: Sequence[str],
             test_labels: Sequence[str], *, k: int = 50, seed: int = 0,
             **linear_kwargs) -> dict:
  """{"num_identities": N, name: {metric: value}} for every feature set in `features`."""
  results: dict = {"num_identities": len(set(train_labels) | set(test_labels))}
  for name, (train_x, test_x) in features.items():
    results[name] = run_probes(train_x, train_labels, test_x, test_labels, k=k, seed=seed,
                               **linear_kwargs)
  return results


def write_eval_json(workdir: str | pathlib.Path, results: Mapping) -> pathlib.Path:
  path = pathlib.Path(workdir) / EVAL_FILE
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")
  return path


def evaluate_and_write(workdir: str | pathlib.Path, features: Mapping[str, tuple[object, object]],
                       train_labels: Sequence[str], test_labels: Sequence[str], *,
                       k: int = 50, seed: int = 0, **linear_kwargs) -> dict:
  """`evaluate`, then `univar_eval.json` in `workdir`; e.g. features = {"univar": (tr, te),
  "base": (tr, te), "tfidf": tfidf_features(train_texts, test_texts)}."""
  results = evaluate(features, train_labels, test_labels, k=k, seed=seed, **linear_kwargs)
  write_eval_json(workdir, results)
  return results
