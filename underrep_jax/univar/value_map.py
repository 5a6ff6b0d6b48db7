"""The value map and the report: where each (LLM, language) identity sits.

An identity's point is the L2-normalised mean embedding of many of its views. The map is
a UMAP (umap-learn, cosine) of those points, coloured by language and labelled with the
model names; a heatmap shows the identities' cosine similarities, grouped by language.
Both are PNGs (matplotlib, Agg backend); the map's coordinates go to a CSV, and
`report.md` holds the probe results in the paper's table shape with the chance level,
and the view-level probe (identity from a view of m held-out QAs) by m.
"""

from collections.abc import Mapping, Sequence
import csv
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from underrep_jax.univar.data import split_identity  # noqa: E402
from underrep_jax.univar.probes import EVAL_FILE, METRICS, TOP_K  # noqa: E402

MAP_PNG = "value_map.png"
HEATMAP_PNG = "identity_similarity.png"
COORDS_CSV = "value_map.csv"
REPORT_MD = "report.md"
REPORT_ROWS = ("univar", "base", "tfidf")
VIEW_PROBE = "view_probe"  # the view-level probe's key in the results
_COLUMN_NAMES = {"knn_acc": "k-NN acc", "knn_weighted_f1": "k-NN weighted F1",
                 **{f"linear_acc@{k}": f"Linear Acc@{k}" for k in TOP_K}}
_VIEW_COLUMNS = ("knn_acc", "linear_acc@1", "linear_acc@5", "linear_acc@10")
_MIN_IDENTITIES = 3


def identity_centroids(embeddings: np.ndarray,
                       labels: Sequence[str]) -> tuple[list[str], np.ndarray]:
  """(sorted identities, [I, D] L2-normalised mean embedding of each identity's rows)."""
  embeddings = np.asarray(embeddings, np.float64)
  if embeddings.ndim != 2 or embeddings.shape[0] != len(labels):
    raise ValueError(f"expected [{len(labels)}, dim] embeddings, got {embeddings.shape}")
  identities = sorted(set(labels))
  labels = np.asarray(labels)
  centroids = np.stack([embeddings[labels == i].mean(axis=0) for i in identities])
  norms = np.linalg.norm(centroids, axis=1, keepdims=True)
  return identities, centroids / np.maximum(norms, 1e-12)


def _import_umap():
  """umap-learn, imported without its optional TensorFlow part (ParametricUMAP).

  `import umap` also imports TensorFlow when it is installed, which costs seconds and
  would bring TensorFlow outside the data layer. Marking it absent for the duration of
  the import makes umap skip ParametricUMAP, which the map does not use. Where the
  process already imported TensorFlow, nothing is hidden.
  """
  if "umap" in sys.modules or "tensorflow" in sys.modules:
    import umap
    return umap
  sys.modules["tensorflow"] = None  # `import tensorflow` now raises ImportError.
  try:
    import umap
  finally:
    del sys.modules["tensorflow"]
  return umap


def umap_reducer(centroids: np.ndarray, seed: int = 0, n_neighbors: int = 15):
  """The fitted UMAP of the identity points (cosine metric, seeded, so single-threaded);
  its `embedding_` is the map, and `transform` places further points on it."""
  umap = _import_umap()  # Slow to import (numba); only the map needs it.
  n = centroids.shape[0]
  if n < _MIN_IDENTITIES:
    raise ValueError(f"a value map needs at least {_MIN_IDENTITIES} identities, got {n}")
  reducer = umap.UMAP(n_neighbors=min(n_neighbors, n - 1), metric="cosine", random_state=seed,
                      n_jobs=1)
  reducer.fit(centroids)
  return reducer


def umap_coordinates(centroids: np.ndarray, seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
  """[I, 2] UMAP of the identity points (cosine metric, seeded, so single-threaded)."""
  return np.asarray(umap_reducer(centroids, seed, n_neighbors).embedding_, np.float64)


def _by_language(identities: Sequence[str]) -> list[int]:
  """Indices of `identities` ordered by (language, model), so languages form blocks."""
  return sorted(range(len(identities)), key=lambda i: split_identity(identities[i])[::-1])


def plot_value_map(coords: np.ndarray, identities: Sequence[str],
                   path: str | pathlib.Path) -> None:
  languages = sorted({split_identity(i)[1] for i in identities})
  colours = plt.get_cmap("tab10" if len(languages) <= 10 else "tab20")
  fig, ax = plt.subplots(figsize=(10, 8))
  for k, language in enumerate(languages):
    rows = [i for i, ident in enumerate(identities) if split_identity(ident)[1] == language]
    ax.scatter(coords[rows, 0], coords[rows, 1], s=40, color=colours(k % colours.N),
               label=language, edgecolors="black", linewidths=0.3)
  for (x, y), identity in zip(coords, identities):
    ax.annotate(split_identity(identity)[0], (x, y), fontsize=6, alpha=0.8,
                xytext=(3, 3), textcoords="offset points")
  finish_map_figure(fig, ax, f"UniVaR value map: {len(identities)} identities (UMAP of "
                    "mean view embeddings)", path)


def finish_map_figure(fig, ax, title: str, path: str | pathlib.Path) -> None:
  """Title, UMAP axes and the language legend of a map; saved and closed."""
  ax.set_title(title)
  ax.set_xlabel("UMAP 1")
  ax.set_ylabel("UMAP 2")
  ax.legend(title="language", fontsize=8, loc="best")
  fig.tight_layout()
  fig.savefig(path, dpi=150)
  plt.close(fig)


def plot_similarity_heatmap(centroids: np.ndarray, identities: Sequence[str],
                            path: str | pathlib.Path) -> None:
  order = _by_language(identities)
  similarity = centroids[order] @ centroids[order].T
  names = [identities[i] for i in order]
  size = max(6.0, 0.12 * len(names) + 3.0)
  fig, ax = plt.subplots(figsize=(size, size))
  image = ax.imshow(similarity, cmap="viridis", vmin=-1.0, vmax=1.0)
  ax.set_xticks(range(len(names)), names, rotation=90, fontsize=5)
  ax.set_yticks(range(len(names)), names, fontsize=5)
  ax.set_title("Cosine similarity of identity embeddings (grouped by language)")
  fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
  fig.tight_layout()
  fig.savefig(path, dpi=150)
  plt.close(fig)


def write_coordinates_csv(path: str | pathlib.Path, identities: Sequence[str],
                          coords: np.ndarray) -> None:
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["identity", "model", "language", "x", "y"])
    for identity, (x, y) in zip(identities, coords):
      model, language = split_identity(identity)
      writer.writerow([identity, model, language, f"{x:.6f}", f"{y:.6f}"])


def _percent(value: float) -> str:
  return f"{100.0 * value:.2f}"


def _feature_sets(results: Mapping) -> list[str]:
  """univar/base/tfidf, then any other encoder's probe results, by name."""
  names = [r for r in REPORT_ROWS if r in results]
  return names + sorted(k for k, v in results.items()
                        if isinstance(v, Mapping) and "knn_acc" in v and k not in names)


def _chance(n: int) -> dict[str, float | None]:
  return {"knn_acc": 1 / n, "knn_weighted_f1": None,
          **{f"linear_acc@{k}": min(k / n, 1.0) for k in TOP_K}}


def results_table(results: Mapping) -> str:
  """Markdown table: rows univar/base/tfidf (then any other encoders) and chance, in %."""
  chance = _chance(int(results["num_identities"]))
  lines = ["| Model | " + " | ".join(_COLUMN_NAMES[m] for m in METRICS) + " |",
           "|---" * (len(METRICS) + 1) + "|"]
  for name in _feature_sets(results):
    lines.append(f"| {name} | " + " | ".join(_percent(results[name][m]) for m in METRICS) + " |")
  lines.append("| chance | " + " | ".join("–" if chance[m] is None else _percent(chance[m])
                                          for m in METRICS) + " |")
  return "\n".join(lines)


def view_probe_table(view_probe: Mapping, num_identities: int) -> str:
  """Markdown table of the view-level probe: one row per (m, feature set), in %."""
  lines = ["| QAs per view | Model | " + " | ".join(_COLUMN_NAMES[m] for m in _VIEW_COLUMNS)
           + " | Views cut at max length |", "|---" * (len(_VIEW_COLUMNS) + 3) + "|"]
  for size in view_probe["qas_per_view"]:
    entry = view_probe["by_size"][str(size)]
    for name in _feature_sets(entry):
      cut = ("–" if name == "tfidf" or "truncated_share" not in entry
             else _percent(entry["truncated_share"]))
      lines.append(f"| {size} | {name} | " + " | ".join(
          _percent(entry[name][m]) for m in _VIEW_COLUMNS) + f" | {cut} |")
  chance = _chance(num_identities)
  lines.append("| | chance | " + " | ".join(_percent(chance[m]) for m in _VIEW_COLUMNS)
               + " | |")
  return "\n".join(lines)


def write_report(path: str | pathlib.Path, results: Mapping, title: str = "UniVaR evaluation",
                 figures: Sequence[str] = (MAP_PNG, HEATMAP_PNG)) -> None:
  """report.md: identity count, chance level, the results table and the figures."""
  n = int(results["num_identities"])
  text = [f"# {title}", "",
          f"Identities: {n}. Chance Acc@1 = 1/{n} = {_percent(1 / n)}%.", "",
          "Single-QA identity classification on the test split, in % "
          f"(from `{EVAL_FILE}`):", "", results_table(results), ""]
  if "univar" in results and "base" in results and results["base"]["knn_acc"] > 0:
    ratio = results["univar"]["knn_acc"] / results["base"]["knn_acc"]
    text += [f"k-NN accuracy, trained / untrained encoder: {ratio:.2f}x.", ""]
  if VIEW_PROBE in results:
    probe = results[VIEW_PROBE]
    capped = {size: probe["by_size"][str(size)]["capped_identities"]
              for size in probe["qas_per_view"]}
    text += ["Identity from a view of m QAs of held-out questions, in % (probes trained on "
             f"{probe['train_views_per_identity']} views of m train QAs per identity, tested "
             f"on {probe['test_views_per_identity']} views of m test QAs per identity; "
             f"views embedded at up to {probe['max_length']} tokens):", "",
             view_probe_table(probe, n), ""]
    if any(capped.values()):
      text += ["Identities with fewer than m QAs in a split (their views hold all they have): "
               + ", ".join(f"m={m}: {c}" for m, c in capped.items()) + ".", ""]
  text += [f"![{name}]({name})" for name in figures]
  pathlib.Path(path).write_text("\n".join(text) + "\n", encoding="utf-8")


def write_value_map(workdir: str | pathlib.Path, embeddings: np.ndarray, labels: Sequence[str],
                    results: Mapping | None = None, seed: int = 0) -> dict[str, pathlib.Path]:
  """Writes the map PNG, the heatmap PNG, the coordinates CSV and (given results) report.md.

  `embeddings` [N, D] are view embeddings and `labels` their identities
  (e.g. from `views.identity_views`). Returns name -> path of what was written.
  """
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  identities, centroids = identity_centroids(embeddings, labels)
  coords = umap_coordinates(centroids, seed=seed)
  paths = {"map": workdir / MAP_PNG, "heatmap": workdir / HEATMAP_PNG,
           "coordinates": workdir / COORDS_CSV}
  plot_value_map(coords, identities, paths["map"])
  plot_similarity_heatmap(centroids, identities, paths["heatmap"])
  write_coordinates_csv(paths["coordinates"], identities, coords)
  if results is not None:
    paths["report"] = workdir / REPORT_MD
    write_report(paths["report"], results)
  return paths
