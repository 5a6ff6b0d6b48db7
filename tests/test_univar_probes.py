"""Identity probes: near 1.0 on separable clusters, near chance on shuffled labels; the
original's k-NN metric and linear-probe schedule; the view-level probe."""

import json

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.neighbors import KNeighborsClassifier

from underrep_jax.univar import data
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
  # Batches of 32: enough steps for the probe to move off its random initial weights.
  return probes.run_probes(*_clusters(), k=10, epochs=20, batch_size=32)


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
  assert unseen == {"linear_acc@1": 0.0, "linear_acc@3": 0.0, "linear_acc@5": 0.0,
                    "linear_acc@10": 0.0}


def test_tfidf_baseline_and_eval_json(tmp_path, separable):
  words = {c: f"word{c}a word{c}b word{c}c" for c in range(4)}
  rng = np.random.default_rng(0)
  train_labels = [f"m|l{c}" for c in range(4) for _ in range(15)]
  test_labels = [f"m|l{c}" for c in range(4) for _ in range(5)]
  texts = lambda labels: [f"Q: what? A: {words[int(y[-1])]} {rng.integers(99)}" for y in labels]
  tfidf = probes.tfidf_features(texts(train_labels), texts(test_labels))
  dense = np.asarray(rng.normal(size=(60, 8))), np.asarray(rng.normal(size=(20, 8)))
  results = probes.evaluate_and_write(tmp_path, {"univar": dense, "base": dense, "tfidf": tfidf},
                                      train_labels, test_labels, k=5, epochs=40, batch_size=16)
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


def test_knn_is_euclidean_as_the_original():
  """Unnormalised points, where cosine and Euclidean neighbours differ."""
  rng = np.random.default_rng(4)

  def points(n):  # the class: the sign of the first coordinate and the length
    x = rng.normal(size=(n, 3)) * rng.uniform(0.2, 5.0, size=(n, 1))
    return x, [f"m|l{int(v)}" for v in (x[:, 0] > 0) + 2 * (np.linalg.norm(x, axis=1) > 3)]

  train_x, train_y = points(120)
  test_x, test_y = points(60)
  got = probes.knn_probe(train_x, train_y, test_x, test_y, k=7)

  def reference(metric):
    predicted = KNeighborsClassifier(n_neighbors=7, metric=metric).fit(
        train_x, train_y).predict(test_x)
    return {"knn_acc": skm.accuracy_score(test_y, predicted),
            "knn_weighted_f1": skm.f1_score(test_y, predicted, average="weighted")}

  assert got == pytest.approx(reference("euclidean"), abs=1e-12)
  assert reference("cosine")["knn_acc"] != reference("euclidean")["knn_acc"]


def test_linear_acc_at_k_is_monotone():
  train_x, train_y, test_x, test_y = _clusters(spread=4.0)  # overlapping classes
  result = probes.linear_probe(train_x, train_y, test_x, test_y, epochs=5, batch_size=64)
  accs = [result[f"linear_acc@{k}"] for k in probes.TOP_K]
  assert probes.TOP_K == (1, 3, 5, 10)
  assert accs == sorted(accs) and accs[0] < accs[-1] < 1.0


def test_linear_probe_lr_decays_linearly_per_epoch(monkeypatch):
  schedule = probes.epoch_linear_schedule(2e-3, epochs=20, steps_per_epoch=7)
  lrs = np.array([float(schedule(step)) for step in range(20 * 7)]).reshape(20, 7)
  assert (lrs == lrs[:, :1]).all()  # constant within an epoch
  np.testing.assert_allclose(lrs[:, 0], 2e-3 * (1 - np.arange(20) / 20), rtol=1e-6)
  # The probe trains with it: 90 rows in batches of 32 are 3 steps an epoch.
  calls = []
  original = probes.epoch_linear_schedule
  monkeypatch.setattr(probes, "epoch_linear_schedule",
                      lambda *args: calls.append(args) or original(*args))
  train_x, train_y, test_x, test_y = _clusters(per_class=10)
  probes.linear_probe(train_x, train_y, test_x, test_y, learning_rate=1e-3, epochs=4,
                      batch_size=32)
  assert calls == [(1e-3, 4, 3)]


def test_linear_probe_starts_from_seeded_random_weights():
  train_x, train_y, test_x, test_y = _clusters(per_class=10, spread=4.0)
  one = probes.linear_probe(train_x, train_y, test_x, test_y, epochs=1, batch_size=32, seed=0)
  again = probes.linear_probe(train_x, train_y, test_x, test_y, epochs=1, batch_size=32, seed=0)
  other = probes.linear_probe(train_x, train_y, test_x, test_y, epochs=1, batch_size=32, seed=1)
  assert one == again and one != other


P_YES = (0.05, 0.35, 0.65, 0.95)  # each identity's chance of answering "yes"


def _yes_no_qas(questions=100, seed=0):
  """4 identities answering yes/no to the same questions, each with its own lean: one
  answer says little about who gave it, many say a lot."""
  rng = np.random.default_rng(seed)
  return [data.QA(f"m{i}|eng", f"m{i}", "eng", f"q{q:03d}", f"Is value {q} important?",
                  "yes" if rng.random() < p else "no")
          for i, p in enumerate(P_YES) for q in range(questions)]


def _yes_share(texts):
  return np.array([[np.mean([line.endswith("A: yes") for line in t.split("\n")])]
                   for t in texts])


def test_view_level_probe_grows_with_m():
  qas = _yes_no_qas()
  train, test = data.split_qas(qas, test_fraction=0.4, seed=0)
  assert {qa.qid for qa in train}.isdisjoint({qa.qid for qa in test})
  result = probes.view_level_probe(
      train, test, {"yes_share": _yes_share}, qas_per_view=(1, 5, 20), train_views=30,
      test_views=25, seed=0, truncated_share=lambda texts: 0.25, k=10, epochs=20,
      batch_size=64)
  assert result["qas_per_view"] == [1, 5, 20]
  assert (result["train_views_per_identity"], result["test_views_per_identity"]) == (30, 25)
  assert set(result["by_size"]) == {"1", "5", "20"}
  for entry in result["by_size"].values():
    assert set(entry) == {"yes_share", "tfidf", "capped_identities", "truncated_share"}
    assert set(entry["yes_share"]) == set(probes.METRICS)
    assert entry["capped_identities"] == 0 and entry["truncated_share"] == 0.25
  for name, metric in (("yes_share", "knn_acc"), ("yes_share", "linear_acc@1"),
                       ("tfidf", "knn_acc")):
    accs = [result["by_size"][m][name][metric] for m in ("1", "5", "20")]
    assert accs[0] < accs[1] < accs[2], (name, metric, accs)
  assert result["by_size"]["20"]["yes_share"]["knn_acc"] > 0.8
  # Deterministic from the seed.
  again = probes.view_level_probe(train, test, {"yes_share": _yes_share}, qas_per_view=(5,),
                                  train_views=30, test_views=25, seed=0, k=10, epochs=20,
                                  batch_size=64)
  assert again["by_size"]["5"]["yes_share"] == result["by_size"]["5"]["yes_share"]
