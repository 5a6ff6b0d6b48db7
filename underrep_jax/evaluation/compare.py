"""Compares evaluation workdirs: one markdown table and one grouped bar plot.

    python -m underrep_jax.evaluation.compare runs/eval_a runs/eval_b --out=runs/compare
"""

import argparse
import json
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from underrep_jax.evaluation import report  # noqa: E402


def _load(workdir: pathlib.Path) -> dict:
  path = workdir / "metrics.json"
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no metrics.json (run an evaluation job there first)")
  return json.loads(path.read_text())


def _headline(metrics: dict) -> dict[tuple[str, str], float]:
  """(task, language or direction) -> weighted F1 (classification) or chrF++ (MT)."""
  out = {}
  for task, by_key in metrics.items():
    if task in ("group_means",) or not isinstance(by_key, dict):
      continue
    for key, m in by_key.items():
      if isinstance(m, dict) and report.HEADLINE in m:
        out[(task, key)] = m[report.HEADLINE]
      elif isinstance(m, dict) and "chrf++" in m:
        out[(task, key)] = m["chrf++"] / 100
  return out


def compare(workdirs: list[pathlib.Path], out: pathlib.Path) -> str:
  names = [w.name or str(w) for w in workdirs]
  tables = [_headline(_load(w)) for w in workdirs]
  keys = sorted({k for t in tables for k in t})
  lines = ["# Comparison (weighted F1 x100; chrF++ for translation)", "",
           "| task | language | " + " | ".join(names) + " |",
           "|---|---|" + "---|" * len(names)]
  for task, key in keys:
    cells = [f"{100 * t[(task, key)]:.1f}" if (task, key) in t else "" for t in tables]
    lines.append(f"| {task} | {key} | " + " | ".join(cells) + " |")
  text = "\n".join(lines) + "\n"
  out.mkdir(parents=True, exist_ok=True)
  (out / "comparison.md").write_text(text)
  fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(keys) * len(names) + 2), 4))
  width = 0.8 / len(names)
  x = np.arange(len(keys))
  for i, (name, table) in enumerate(zip(names, tables)):
    ax.bar(x + i * width, [table.get(k, 0.0) for k in keys], width, label=name)
  ax.set_xticks(x + 0.4 - width / 2, [f"{t}\n{k}" for t, k in keys], rotation=60, fontsize=6)
  ax.set_ylabel("weighted F1 / chrF++ (0-1)")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(out / "comparison.png", dpi=100)
  plt.close(fig)
  return text


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("workdirs", nargs="+", type=pathlib.Path)
  parser.add_argument("--out", type=pathlib.Path, required=True)
  args = parser.parse_args(argv)
  try:
    print(compare(args.workdirs, args.out))
  except FileNotFoundError as e:
    print(f"compare: error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
