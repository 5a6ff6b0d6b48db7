"""Value map outputs: PNGs that open, a CSV with one row per identity, the report table."""

import csv

import matplotlib.image
import numpy as np

from underrep_jax.univar import value_map

RESULTS = {"num_identities": 8,
           "univar": {"knn_acc": 0.2037, "knn_weighted_f1": 0.19, "linear_acc@1": 0.1867,
                      "linear_acc@3": 0.35, "linear_acc@5": 0.4575, "linear_acc@10": 0.617},
           "base": {"knn_acc": 0.0103, "knn_weighted_f1": 0.01, "linear_acc@1": 0.0711,
                    "linear_acc@3": 0.15, "linear_acc@5": 0.2195, "linear_acc@10": 0.3329},
           "tfidf": {"knn_acc": 0.05, "knn_weighted_f1": 0.04, "linear_acc@1": 0.1,
                     "linear_acc@3": 0.2, "linear_acc@5": 0.3, "linear_acc@10": 0.5}}


def _view_entry(scale, truncated):
  return {**{name: {k: scale * v for k, v in RESULTS[name].items()}
             for name in ("univar", "base", "tfidf")},
          "capped_identities": 0 if scale == 1.0 else 3, "truncated_share": truncated}


VIEW_PROBE = {"qas_per_view": [1, 5], "train_views_per_identity": 32,
              "test_views_per_identity": 10, "max_length": 512,
              "by_size": {"1": _view_entry(1.0, 0.0), "5": _view_entry(1.5, 0.25)}}


def test_value_map_files(tmp_path):
  rng = np.random.default_rng(0)
  identities = [f"model-{m}|{lang}" for m in range(4) for lang in ("eng", "zho")]
  labels = [i for i in identities for _ in range(5)]
  embeddings = rng.normal(size=(len(labels), 16))
  paths = value_map.write_value_map(tmp_path, embeddings, labels, RESULTS, seed=0)
  assert set(paths) == {"map", "heatmap", "coordinates", "report"}
  for name in ("map", "heatmap"):
    image = matplotlib.image.imread(paths[name])
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
  with open(paths["coordinates"], newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert [r["identity"] for r in rows] == sorted(identities)
  assert all(r["identity"] == f"{r['model']}|{r['language']}" for r in rows)
  assert all(np.isfinite([float(r["x"]), float(r["y"])]).all() for r in rows)
  report = paths["report"].read_text()
  assert "Identities: 8. Chance Acc@1 = 1/8 = 12.50%." in report
  assert "| univar | 20.37 | 19.00 | 18.67 | 35.00 | 45.75 | 61.70 |" in report
  assert "| chance | 12.50 | – | 12.50 | 37.50 | 62.50 | 100.00 |" in report
  assert "k-NN accuracy, trained / untrained encoder: 19.78x." in report  # 20.37 / 1.03
  lines = [line for line in report.splitlines() if line.startswith("|")]
  assert [line.split("|")[1].strip() for line in lines[2:]] == ["univar", "base", "tfidf",
                                                                "chance"]


def test_centroids_are_normalised_means():
  identities, centroids = value_map.identity_centroids(
      np.array([[2.0, 0.0], [0.0, 2.0], [0.0, -3.0]]), ["b|x", "b|x", "a|y"])
  assert identities == ["a|y", "b|x"]
  np.testing.assert_allclose(centroids, [[0.0, -1.0], [np.sqrt(0.5), np.sqrt(0.5)]])


def test_report_has_the_view_level_probe_by_m(tmp_path):
  path = tmp_path / "report.md"
  value_map.write_report(path, {**RESULTS, value_map.VIEW_PROBE: VIEW_PROBE})
  report = path.read_text()
  # The single-QA table is unchanged by the view probe's entry.
  lines = [line for line in report.splitlines() if line.startswith("| ")]
  assert [line.split("|")[1].strip() for line in lines[1:5]] == ["univar", "base", "tfidf",
                                                                "chance"]
  assert "| 1 | univar | 20.37 | 18.67 | 45.75 | 61.70 | 0.00 |" in report
  assert "| 5 | univar | 30.55 | 28.01 | 68.62 | 92.55 | 25.00 |" in report
  assert "fewer than m QAs in a split (their views hold all they have): m=1: 0, m=5: 3." in report
  assert "| 5 | tfidf | 7.50 | 15.00 | 45.00 | 75.00 | – |" in report
  assert "| | chance | 12.50 | 12.50 | 62.50 | 100.00 | |" in report
  assert "32 views of m train QAs per identity" in report and "up to 512 tokens" in report
