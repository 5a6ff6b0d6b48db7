"""New identities on an existing value map: projection, nearest identities, figure, report.

The known identities' points are rebuilt exactly as the univar job built its map (the
same QAs, views, seed and encoder), so refitting the seeded UMAP on them gives the
published map again. New identities are then either projected onto that fitted UMAP
(`transform`, default: the known identities stay where `value_map.png` put them, so the
new points are read against the map everyone has seen) or the UMAP is fitted again on
known and new points together (`refit`: the layout may shift; for many new identities,
or when the transformed points crowd at the map's edge). Nearest identities are found in
the embedding space, not on the 2-D map: cosine similarity of the L2-normalised identity
points (the heatmap's measure; on unit vectors it ranks exactly as the Euclidean
distance of the k-NN probes, d^2 = 2 - 2 cos).
"""

from collections.abc import Mapping, Sequence
import csv
import io
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from underrep_jax import files  # noqa: E402
from underrep_jax.univar import value_map  # noqa: E402
from underrep_jax.univar.data import split_identity  # noqa: E402

PROJECTIONS = ("transform", "refit")
PLACED_PNG = "value_map_placed.png"
PLACED_CSV = "value_map_placed.csv"
NEAREST_JSON = "nearest_identities.json"
NEAREST_CSV = "nearest_identities.csv"
REPORT_MD = "report.md"


def project(known: np.ndarray, new: np.ndarray, seed: int = 0,
            projection: str = "transform") -> tuple[np.ndarray, np.ndarray]:
  """([K, 2] known, [N, 2] new) map coordinates of the identity points."""
  if projection not in PROJECTIONS:
    raise ValueError(f"unknown projection {projection!r}; known: {', '.join(PROJECTIONS)}")
  if projection == "refit":
    coords = value_map.umap_coordinates(np.concatenate([known, new]), seed=seed)
    return coords[:len(known)], coords[len(known):]
  reducer = value_map.umap_reducer(known, seed=seed)
  return (np.asarray(reducer.embedding_, np.float64),
          np.asarray(reducer.transform(new), np.float64))


def nearest_identities(new: np.ndarray, new_ids: Sequence[str], known: np.ndarray,
                       known_ids: Sequence[str], k: int = 5) -> dict[str, list[dict]]:
  """new identity -> its k nearest known identities, most similar first, with the cosine
  similarity and the Euclidean distance of the L2-normalised points."""
  known = known / np.maximum(np.linalg.norm(known, axis=1, keepdims=True), 1e-12)
  new = new / np.maximum(np.linalg.norm(new, axis=1, keepdims=True), 1e-12)
  similarity = new @ known.T
  out = {}
  for row, identity in enumerate(new_ids):
    order = np.argsort(-similarity[row], kind="stable")[:k]
    out[identity] = [{"identity": known_ids[j], "model": split_identity(known_ids[j])[0],
                      "language": split_identity(known_ids[j])[1],
                      "cosine": round(float(similarity[row, j]), 6),
                      "euclidean": round(float(np.sqrt(max(0.0, 2 - 2 * similarity[row, j]))),
                                         6)}
                     for j in order]
  return out


def plot_placed(known_coords: np.ndarray, known_ids: Sequence[str], new_coords: np.ndarray,
                new_ids: Sequence[str], path: str | pathlib.Path, title: str) -> None:
  """The map with the known identities as in `value_map.png` (coloured by language) and
  the new ones as large stars with their full labels."""
  languages = sorted({split_identity(i)[1] for i in [*known_ids, *new_ids]})
  colours = plt.get_cmap("tab10" if len(languages) <= 10 else "tab20")
  colour = {lang: colours(k % colours.N) for k, lang in enumerate(languages)}
  fig, ax = plt.subplots(figsize=(10, 8))
  for language in languages:
    rows = [i for i, ident in enumerate(known_ids) if split_identity(ident)[1] == language]
    if rows:
      ax.scatter(known_coords[rows, 0], known_coords[rows, 1], s=30, color=colour[language],
                 label=language, edgecolors="black", linewidths=0.3, alpha=0.6)
  for (x, y), identity in zip(known_coords, known_ids):
    ax.annotate(split_identity(identity)[0], (x, y), fontsize=5, alpha=0.6, xytext=(3, 3),
                textcoords="offset points")
  for (x, y), identity in zip(new_coords, new_ids):
    ax.scatter([x], [y], s=260, marker="*", color=colour[split_identity(identity)[1]],
               edgecolors="black", linewidths=1.2, zorder=3)
    ax.annotate(identity, (x, y), fontsize=8, fontweight="bold", xytext=(6, 6),
                textcoords="offset points", zorder=4)
  ax.scatter([], [], s=160, marker="*", color="white", edgecolors="black", label="new (★)")
  value_map.finish_map_figure(fig, ax, title, path)


def write_placed_csv(path: str | pathlib.Path, known_ids: Sequence[str],
                     known_coords: np.ndarray, new_ids: Sequence[str],
                     new_coords: np.ndarray) -> None:
  buffer = io.StringIO(newline="")
  writer = csv.writer(buffer)
  writer.writerow(["identity", "model", "language", "x", "y", "new"])
  for ids, coords, is_new in ((known_ids, known_coords, 0), (new_ids, new_coords, 1)):
    for identity, (x, y) in zip(ids, coords):
      model, language = split_identity(identity)
      writer.writerow([identity, model, language, f"{x:.6f}", f"{y:.6f}", is_new])
  files.atomic_write_text(path, buffer.getvalue())


def write_nearest(workdir: pathlib.Path, nearest: Mapping[str, list[dict]]) -> None:
  files.write_json(workdir / NEAREST_JSON, nearest)
  buffer = io.StringIO(newline="")
  writer = csv.writer(buffer)
  writer.writerow(["identity", "rank", "nearest", "cosine", "euclidean"])
  for identity, rows in nearest.items():
    for rank, row in enumerate(rows, start=1):
      writer.writerow([identity, rank, row["identity"], row["cosine"], row["euclidean"]])
  files.atomic_write_text(workdir / NEAREST_CSV, buffer.getvalue())


def _cell(text: str) -> str:
  """`model|lang` in a Markdown table cell (the bar would start a new column)."""
  return text.replace("|", "\\|")


def write_report(path: str | pathlib.Path, nearest: Mapping[str, list[dict]],
                 info: Mapping) -> None:
  """report.md: where the new identities came from, how they were placed, their nearest
  known identities and the figure."""
  text = [f"# New identities on the value map of `{info['univar_workdir']}`", "",
          f"{info['new_identities']} new identities from `{info['qas']}` "
          f"({info['new_qas']} QAs, {info['views_per_identity']} views of up to "
          f"{info['max_qas']} QAs each, up to {info['max_length']} tokens) beside "
          f"{info['known_identities']} known identities, embedded with the trained encoder "
          f"of step {info['step']}.", "",
          f"Projection: `{info['projection']}` "
          + ("(the known identities' UMAP, refitted as the univar job fitted it, and the new "
             "points placed on it with `UMAP.transform`)." if info["projection"] == "transform"
             else "(one UMAP fitted again on known and new identities together)."), ""]
  if info.get("map_deviation") is not None:
    text += [f"Known identities' coordinates vs the workdir's `value_map.csv`: largest "
             f"difference {info['map_deviation']:.4g}.", ""]
  text += ["Nearest known identities (cosine similarity of the identity embeddings):", "",
           "| new identity | rank | nearest known identity | cosine |", "|---|---|---|---|"]
  for identity, rows in nearest.items():
    for rank, row in enumerate(rows, start=1):
      text.append(f"| {_cell(identity) if rank == 1 else ''} | {rank} | "
                  f"{_cell(row['identity'])} | {row['cosine']:.3f} |")
  text += ["", f"![{PLACED_PNG}]({PLACED_PNG})"]
  files.atomic_write_text(path, "\n".join(text) + "\n")
