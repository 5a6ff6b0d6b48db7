"""Identity probes: which (LLM, language) produced this QA, or this view of m QAs?

As the authors' evaluation code: embed each test item with a frozen encoder and train
two probes on the train split's embeddings:
- k-NN (scikit-learn, Euclidean, k=50): accuracy and weighted F1;
- a linear softmax probe (random init, Adam lr 2e-3, batch 512, 20 epochs, the lr decayed
  linearly per epoch): Acc@1/@3/@5/@10 after the last epoch (the original logs every
  epoch; taking the last needs no choice made on the test split).
A TF-IDF baseline (scikit-learn) runs the same probes on bag-of-words features.

Features may be dense arrays or scipy sparse matrices (TF-IDF); the linear probe makes
each minibatch dense on its own, so a large vocabulary never becomes one dense matrix.
`evaluate` takes name -> (train features, test features) so the job decides which
encoders to compare; `write_eval_json` writes `univar_eval.json`.
"""

from collections.abc import Callable, Mapping, Sequence
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

from underrep_jax.univar import data as data_lib
from underrep_jax.univar import views as views_lib

EVAL_FILE = "univar_eval.json"
TOP_K = (1, 3, 5, 10)
METRICS = ("knn_acc", "knn_weighted_f1") + tuple(f"linear_acc@{k}" for k in TOP_K)
_PREDICT_CHUNK = 4096


def _check(train_x, train_y: Sequence[str], test_x, test_y: Sequence[str]) -> None:
  if train_x.shape[0] != len(train_y) or test_x.shape[0] != len(test_y):
    raise ValueError(f"features and labels disagree: train {train_x.shape[0]} vs "
                     f"{len(train_y)}, test {test_x.shape[0]} vs {len(test_y)}")
  if not len(train_y) or not len(test_y):
    raise ValueError("the probes need at least one train and one test example")


def knn_probe(train_x, train_y: Sequence[str], test_x, test_y: Sequence[str],
              k: int = 50, metric: str = "euclidean") -> dict[str, float]:
  """k-NN (Euclidean, as the original): accuracy and weighted F1; k is capped at the
  number of train examples. On L2-normalised embeddings cosine ranks neighbours alike."""
  _check(train_x, train_y, test_x, test_y)
  knn = KNeighborsClassifier(n_neighbors=min(k, len(train_y)), metric=metric)
  knn.fit(train_x, np.asarray(train_y))
  predicted = knn.predict(test_x)
  return {
      "knn_acc": float(skm.accuracy_score(test_y, predicted)),
      "knn_weighted_f1": float(skm.f1_score(test_y, predicted, average="weighted",
                                            zero_division=0)),
  }


def epoch_linear_schedule(learning_rate: float, epochs: int,
                          steps_per_epoch: int) -> optax.Schedule:
  """lr * (1 - epoch / epochs), constant within an epoch: the original's LambdaLR,
  stepped once per epoch."""
  def schedule(step):
    epoch = jnp.asarray(step) // steps_per_epoch
    return learning_rate * (1.0 - epoch / epochs)
  return schedule


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
  """Softmax regression trained with Adam; Acc@1/@3/@5/@10 on the test split.

  As the original's torch nn.Linear: weights and bias start uniform in +-1/sqrt(dim),
  the lr decays linearly per epoch (`epoch_linear_schedule`). The seed fixes the init
  and the shuffling, so the result is deterministic. The last partial batch is padded
  and masked (its loss the mean over its real rows, as a short torch batch), so one
  compiled step serves every batch. A test label never seen in training counts as a
  miss, and Acc@k with k >= the number of classes is 1 for seen labels.
  """
  _check(train_x, train_y, test_x, test_y)
  classes = sorted(set(train_y))
  index = {c: i for i, c in enumerate(classes)}
  y_train = np.asarray([index[c] for c in train_y], np.int32)
  y_test = np.asarray([index.get(c, -1) for c in test_y], np.int32)
  dim = train_x.shape[1]
  bound = 1.0 / np.sqrt(dim)
  w_key, b_key = jax.random.split(jax.random.key(seed))
  params = {"w": jax.random.uniform(w_key, (dim, len(classes)), jnp.float32, -bound, bound),
            "b": jax.random.uniform(b_key, (len(classes),), jnp.float32, -bound, bound)}
  n = len(y_train)
  steps_per_epoch = -(-n // batch_size)
  optimizer = optax.adam(epoch_linear_schedule(learning_rate, epochs, steps_per_epoch))
  opt_state = optimizer.init(params)

  @jax.jit
  def step(params, opt_state, x, y, weight):
    grads = jax.grad(_cross_entropy)(params, x, y, weight)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  rng = np.random.default_rng(seed)
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
    # 0 = the true class is the top guess. Ties go to the lower class index, as a
    # stable descending sort would order them.
    earlier = np.arange(logits.shape[1])[None, :] < y[:, None]
    rank = np.sum((logits > true_logit) | ((logits == true_logit) & earlier), axis=1)
    ranks.append(np.where(y >= 0, rank, np.iinfo(np.int32).max))
  rank = np.concatenate(ranks)
  return {f"linear_acc@{k}": float(np.mean(rank < k)) for k in TOP_K}


def run_probes(train_x, train_y: Sequence[str], test_x, test_y: Sequence[str], *, k: int = 50,
               metric: str = "euclidean", seed: int = 0, **linear_kwargs) -> dict[str, float]:
  """All metrics of one feature set (the keys in METRICS)."""
  out = knn_probe(train_x, train_y, test_x, test_y, k=k, metric=metric)
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
             test_labels: Sequence[str], *, k: int = 50, metric: str = "euclidean",
             seed: int = 0, **linear_kwargs) -> dict:
  """{"num_identities": N, name: {metric: value}} for every feature set in `features`."""
  results: dict = {"num_identities": len(set(train_labels) | set(test_labels))}
  for name, (train_x, test_x) in features.items():
    results[name] = run_probes(train_x, train_labels, test_x, test_labels, k=k, metric=metric,
                               seed=seed, **linear_kwargs)
  return results


def view_level_probe(train_qas: Sequence[data_lib.QA], test_qas: Sequence[data_lib.QA],
                     embedders: Mapping[str, Callable[[Sequence[str]], np.ndarray]], *,
                     qas_per_view: Sequence[int] = (1, 5, 20), train_views: int = 32,
                     test_views: int = 10, seed: int = 0,
                     tfidf_max_features: int | None = 20_000,
                     truncated_share: Callable[[Sequence[str]], float] | None = None,
                     k: int = 50, metric: str = "euclidean", **linear_kwargs) -> dict:
  """Identity from a view of m QAs, for each m in `qas_per_view`: what the value map
  is built from, and how much m QAs say beyond one.

  Probes train on `train_views` views of m train QAs per identity and are tested on
  `test_views` views of m test QAs (held-out questions), built from `seed`
  (`views.probe_views`), for each embedder (texts -> [N, D]) and TF-IDF. An identity
  with fewer than m QAs in a split gives views of all of them (counted in
  `capped_identities`); `truncated_share(texts)` reports the share of views an encoder
  cuts at its max length.
  """
  out = {"qas_per_view": [int(m) for m in qas_per_view], "train_views_per_identity": train_views,
         "test_views_per_identity": test_views, "by_size": {}}
  for m in qas_per_view:
    train = views_lib.probe_views(train_qas, m, train_views, seed=seed)
    test = views_lib.probe_views(test_qas, m, test_views, seed=seed + 1)
    features = {name: (embed(train.texts), embed(test.texts)) for name, embed in embedders.items()}
    features["tfidf"] = tfidf_features(train.texts, test.texts, max_features=tfidf_max_features)
    entry = evaluate(features, train.labels, test.labels, k=k, metric=metric, seed=seed,
                     **linear_kwargs)
    del entry["num_identities"]
    entry["capped_identities"] = len(set(train.capped) | set(test.capped))
    if truncated_share is not None:
      entry["truncated_share"] = float(truncated_share(train.texts + test.texts))
    out["by_size"][str(m)] = entry
  return out


def write_eval_json(workdir: str | pathlib.Path, results: Mapping) -> pathlib.Path:
  path = pathlib.Path(workdir) / EVAL_FILE
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")
  return path


def evaluate_and_write(workdir: str | pathlib.Path, features: Mapping[str, tuple[object, object]],
                       train_labels: Sequence[str], test_labels: Sequence[str], *,
                       k: int = 50, metric: str = "euclidean", seed: int = 0,
                       **linear_kwargs) -> dict:
  """`evaluate`, then `univar_eval.json` in `workdir`; e.g. features = {"univar": (tr, te),
  "base": (tr, te), "tfidf": tfidf_features(train_texts, test_texts)}."""
  results = evaluate(features, train_labels, test_labels, k=k, metric=metric, seed=seed,
                     **linear_kwargs)
  write_eval_json(workdir, results)
  return results
