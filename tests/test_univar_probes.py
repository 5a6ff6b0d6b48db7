"""Identity probes: near 1.0 on separable clusters, near chance on shuffled labels."""

import json

import numpy as np
import pytest

from underrep_jax.univar import probes

NUM_CLASSES = 12


def _clusters(per_class=40, dim=16, spread=0.3, seed=0):
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(NUM_CLASSES, dim)) * 3.0
  labels = np.repeat([f"model{c // 3}|lang{c % 3}" for c in range(NUM_CLASSES)], per_class)
  x = np.repeat(centres, per_class, axis=0) + spread * rng.normal(size=(len(labels), dim))
  test = np.zeros(len(labels), bool)
  test[rng.permutation(len(labels))[:len(labels) // 4]] = True
  return x[~test], labels[~test].tolist(), x[test], labels[test].tolist()


@pytest.fixture(scope="module")
def separable():
  return probes.run_probes(*_clusters(), k=10, epochs=20)


def test_probes_separate_clusters(separable):
  assert set(separable) == set(probes.METRICS)
  for metric in probes.METRICS:
    assert separable[metric] >= 0.97, (metric, separable)


def test_probes_stay_near_chance_on_shuffled_labels():
  train_x, train_y, test_x, test_y = _clusters()
  rng = np.random.default_rng(1)
  # Shuffling both splits makes every test point an independent draw.
  train_y, test_y = rng.permutation(train_y).tolist(), rng.permutation(test_y).tolist()
  result = probes.run_probes(train_x, train_y, test_x, test_y, k=10, epochs=20)
  chance = 1 / NUM_CLASSES
  assert result["knn_acc"] < chance + 0.1
  assert result["linear_acc@1"] < chance + 0.1
  assert abs(result["linear_acc@5"] - 5 * chance) < 0.15


def test_linear_probe_handles_sparse_and_unseen_labels():
  train_x, train_y, test_x, test_y = _clusters(per_class=10)
  from scipy import sparse
  dense = probes.linear_probe(train_x, train_y, test_x, test_y, epochs=3, batch_size=32)
  again = probes.linear_probe(sparse.csr_matrix(train_x), train_y, sparse.csr_matrix(test_x),
                              test_y, epochs=3, batch_size=32)
  for k, v in dense.items():
    assert again[k] == pytest.approx(v, abs=1e-6)
  unseen = probes.linear_probe(train_x, train_y, test_x, ["never|seen"] * len(test_y), epochs=1,
                               batch_size=32)
  assert unseen == {"linear_acc@1": 0.0, "linear_acc@5": 0.0, "linear_acc@10": 0.0}


def test_tfidf_baseline_and_eval_json(tmp_path, separable):
  words = {c: f"word{c}a word{c}b word{c}c" for c in range(4)}
  rng = np.random.default_rng(0)
  train_labels = [f"m|l{c}" for c in range(4) for _ in range(15)]
  test_labels = [f"m|l{c}" for c in range(4) for _ in range(5)]
  texts = lambda labels: [f"Q: what? A: {words[int(y[-1])]} {rng.integers(99)}" for y in labels]
  tfidf = probes.tfidf_features(texts(train_labels), texts(test_labels))
  dense = np.asarray(rng.normal(size=(60, 8))), np.asarray(rng.normal(size=(20, 8)))
  results = probes.evaluate_and_write(tmp_path, {"univar": dense, "base": dense, "tfidf": tfidf},
                                      train_labels, test_labels, k=5, epochs=20, batch_size=16)
  written = json.loads((tmp_path / probes.EVAL_FILE).read_text())
  assert written == results
  assert written["num_identities"] == 4
  assert set(written) == {"num_identities", "univar", "base", "tfidf"}
  for name in ("univar", "base", "tfidf"):
    assert set(written[name]) == set(probes.METRICS)
  assert written["tfidf"]["knn_acc"] == 1.0 and written["tfidf"]["linear_acc@1"] == 1.0


def test_mismatched_lengths():
  with pytest.raises(ValueError, match="disagree"):
    probes.knn_probe(np.zeros((3, 2)), ["a", "b"], np.zeros((1, 2)), ["a"])
