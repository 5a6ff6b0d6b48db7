"""The compare stage: one report over an experiment's evaluation workdirs.

Each run is (variant, seed, evaluation workdir with metrics.json). Per task, variant and
seed the headline (weighted F1, the mean over prompts) is averaged over the languages of
each group (pretrained = eng/ind, seen, unseen; `all` = every language, the paper's
"mean over languages"); over seeds the report gives mean, standard deviation (ddof 1)
and min-max. The majority and random baselines are the evaluation's own (per language,
averaged the same way). Writes report.md, report.json and report.png.

Claims (`claims="miniature"`): with the base model `baseline`, the control that continued
the base's training `control`, and the aligned variants `align` (r = 0) and
`align_replay` (with replay), each claim is stated per task as holding or not, with its
numbers (means over seeds).
"""

import json
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from underrep_jax import files  # noqa: E402
from underrep_jax.data import languages  # noqa: E402
from underrep_jax.experiments import published as published_lib  # noqa: E402

HEADLINE = "weighted_f1"
GROUPS = ("pretrained", "seen", "unseen", "all")
BASELINES = ("majority", "random")
ALIGN, ALIGN_REPLAY = "align", "align_replay"


def parse_runs(text: str) -> list[tuple[str, str, pathlib.Path]]:
  """"variant@seed=PATH,..." -> [(variant, seed, path)]."""
  out = []
  for item in [s.strip() for s in text.split(",") if s.strip()]:
    head, sep, path = item.partition("=")
    variant, _, seed = head.partition("@")
    if not sep or not variant or not path:
      raise ValueError(f"config.runs: {item!r} is not variant@seed=PATH")
    out.append((variant, seed or "0", pathlib.Path(path)))
  if not out:
    raise ValueError("config.runs is empty: nothing to compare")
  return out


def _group(code: str) -> str:
  try:
    return languages.get(code).group
  except Exception:  # pylint: disable=broad-except
    return ""


def language_scores(metrics: dict) -> dict[str, dict[str, dict]]:
  """{task: {language: entry}} of a metrics.json's classification results."""
  out = {}
  for task, by_language in metrics.items():
    if not isinstance(by_language, dict) or task == "group_means":
      continue
    entries = {lang: m for lang, m in by_language.items()
               if isinstance(m, dict) and HEADLINE in m and _group(lang)}
    if entries:
      out[task] = entries
  return out


def group_means(entries: dict[str, dict], pick=lambda m: m[HEADLINE]) -> dict[str, float]:
  out = {}
  for group in GROUPS:
    values = [pick(m) for lang, m in entries.items() if group == "all" or _group(lang) == group]
    if values:
      out[group] = float(np.mean(values))
  return out


def spread(values: list[float]) -> dict:
  a = np.asarray(values, dtype=float)
  return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
          "min": float(a.min()), "max": float(a.max()), "n": int(len(a)),
          "values": [float(v) for v in a]}


def collect(runs: list[tuple[str, str, pathlib.Path]]) -> dict:
  """{"variants", "seeds", "tasks": {task: {variant: {group: spread}}},
  "baselines": {task: {majority|random: {group: value}}}, "languages": {task: [...]}}."""
  per_run: dict = {}  # task -> variant -> seed -> {group: value}
  baselines: dict = {}
  task_languages: dict = {}
  variants, seeds = [], []
  for variant, seed, path in runs:
    metrics_path = path / "metrics.json"
    if not metrics_path.is_file():
      raise FileNotFoundError(f"{metrics_path}: no metrics.json (run that evaluation first)")
    metrics = json.loads(metrics_path.read_text())
    variants += [variant] if variant not in variants else []
    seeds += [seed] if seed not in seeds else []
    for task, entries in language_scores(metrics).items():
      per_run.setdefault(task, {}).setdefault(variant, {})[seed] = group_means(entries)
      task_languages[task] = sorted(set(task_languages.get(task, [])) | set(entries))
      if task not in baselines and all(b in m for m in entries.values() for b in BASELINES):
        baselines[task] = {b: group_means(entries, lambda m, b=b: m[b][HEADLINE])
                           for b in BASELINES}
  tasks = {}
  for task, by_variant in per_run.items():
    tasks[task] = {}
    for variant, by_seed in by_variant.items():
      groups = sorted({g for v in by_seed.values() for g in v}, key=GROUPS.index)
      tasks[task][variant] = {g: spread([v[g] for v in by_seed.values() if g in v])
                              for g in groups}
  return {"variants": variants, "seeds": seeds, "tasks": tasks, "baselines": baselines,
          "languages": task_languages}


def _mean(result: dict, task: str, variant: str, group: str) -> float | None:
  entry = result["tasks"].get(task, {}).get(variant, {}).get(group)
  return entry["mean"] if entry else None


def _f(x: float) -> str:
  return f"{100 * x:.1f}"


def miniature_claims(result: dict, baseline: str, control: str) -> list[dict]:
  """The miniature experiment's three claims, per task, holding or not, with numbers."""
  claims = []
  aligned = [v for v in (ALIGN, ALIGN_REPLAY) if v in result["variants"]]
  for task in result["tasks"]:
    m = lambda v, g, task=task: _mean(result, task, v, g)  # noqa: E731
    for variant in aligned:
      a, b, c = m(variant, "seen"), m(baseline, "seen"), m(control, "seen")
      if None not in (a, b, c):
        claims.append({
            "claim": "alignment raises seen languages' weighted F1 above base and control",
            "task": task, "variant": variant, "holds": bool(a > b and a > c),
            "numbers": f"seen: {variant} {_f(a)} vs base {_f(b)}, control {_f(c)}"})
    a, r, b = m(ALIGN, "pretrained"), m(ALIGN_REPLAY, "pretrained"), m(baseline, "pretrained")
    if None not in (a, b):
      claims.append({
          "claim": "without replay eng/ind weighted F1 falls below base", "task": task,
          "variant": ALIGN, "holds": bool(a < b),
          "numbers": f"eng/ind: {ALIGN} {_f(a)} vs base {_f(b)}"})
    if None not in (a, r, b):
      claims.append({
          "claim": "with replay eng/ind weighted F1 stays closer to base", "task": task,
          "variant": ALIGN_REPLAY, "holds": bool(abs(b - r) < abs(b - a)),
          "numbers": f"eng/ind: |base - {ALIGN_REPLAY}| = {_f(abs(b - r))} vs "
                     f"|base - {ALIGN}| = {_f(abs(b - a))}"})
    for variant in aligned:
      s, bs = m(variant, "seen"), m(baseline, "seen")
      u, bu = m(variant, "unseen"), m(baseline, "unseen")
      if None not in (s, bs, u, bu):
        claims.append({
            "claim": "unseen languages gain less than seen", "task": task,
            "variant": variant, "holds": bool(u - bu < s - bs),
            "numbers": f"gain over base: unseen {_f(u - bu)} vs seen {_f(s - bs)}"})
  return claims


def published_rows(result: dict, name: str) -> list[dict]:
  """The published table's rows with our number beside each (mean over all languages)."""
  rows = []
  for task, label, variant, value in published_lib.table(name)["rows"]:
    ours = None
    if variant in BASELINES:
      ours = result["baselines"].get(task, {}).get(variant, {}).get("all")
    elif variant:
      entry = result["tasks"].get(task, {}).get(variant, {}).get("all")
      ours = entry and entry["mean"]
    rows.append({"task": task, "published_label": label, "variant": variant,
                 "published": value, "ours": ours})
  return rows


def _cell(entry: dict | None) -> str:
  if not entry:
    return ""
  if entry["n"] == 1:
    return _f(entry["mean"])
  return (f"{_f(entry['mean'])} ± {_f(entry['std'])} "
          f"[{_f(entry['min'])}, {_f(entry['max'])}]")


def markdown(result: dict, title: str) -> str:
  n = len(result["seeds"])
  lines = [f"# {title}", "",
           f"Weighted F1 x100 (mean over prompts, then over each group's languages); "
           f"{n} seed{'s' if n != 1 else ''} ({', '.join(map(str, result['seeds']))})"
           + ("; mean ± std [min, max] over seeds." if n > 1 else "."), ""]
  tasks = list(result["tasks"])
  lines += ["## Mean over all languages", "",
            "| variant | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
  for variant in result["variants"]:
    lines.append(f"| {variant} | " + " | ".join(
        _cell(result["tasks"][t].get(variant, {}).get("all")) for t in tasks) + " |")
  for b in BASELINES:
    lines.append(f"| *{b}* | " + " | ".join(
        _f(result["baselines"][t][b]["all"]) if t in result["baselines"] else ""
        for t in tasks) + " |")
  lines.append("")
  for task, by_variant in result["tasks"].items():
    groups = [g for g in GROUPS if any(g in v for v in by_variant.values())]
    lines += [f"## {task}", "", f"languages: {', '.join(result['languages'][task])}", "",
              "| variant | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
    for variant, entry in by_variant.items():
      lines.append(f"| {variant} | " + " | ".join(_cell(entry.get(g)) for g in groups) + " |")
    for b, values in result["baselines"].get(task, {}).items():
      lines.append(f"| *{b}* | " + " | ".join(_f(values[g]) if g in values else ""
                                               for g in groups) + " |")
    lines.append("")
  if result.get("published"):
    lines += ["## Published numbers beside ours", "",
              f"Source: {result['published_source']}. Ours: the mean over all languages.",
              "", "| task | published | variant here | published WF1 | ours |",
              "|---|---|---|---|---|"]
    for row in result["published"]:
      ours = _f(row["ours"]) if row["ours"] is not None else (
          "not run" if not row["variant"] else "pending")
      lines.append(f"| {row['task']} | {row['published_label']} | {row['variant'] or '-'} "
                   f"| {_f(row['published'])} | {ours} |")
    lines.append("")
  if result.get("claims") is not None:
    held = sum(c["holds"] for c in result["claims"])
    lines += ["## Claims", "", f"{held} of {len(result['claims'])} hold.", "",
              "| claim | task | variant | holds | numbers |", "|---|---|---|---|---|"]
    for c in result["claims"]:
      lines.append(f"| {c['claim']} | {c['task']} | {c['variant']} | "
                   f"{'yes' if c['holds'] else 'no'} | {c['numbers']} |")
    lines.append("")
  return "\n".join(lines)


def plot(result: dict, path: pathlib.Path, title: str) -> None:
  """Per task, bars of each variant's group means (std over seeds as error bars), with
  the majority and random baselines as dashed lines per group."""
  tasks = list(result["tasks"])
  fig, axes = plt.subplots(1, max(1, len(tasks)), figsize=(5 * max(1, len(tasks)), 4),
                           squeeze=False)
  for ax, task in zip(axes[0], tasks):
    by_variant = result["tasks"][task]
    groups = [g for g in GROUPS if any(g in v for v in by_variant.values())]
    width = 0.8 / max(1, len(by_variant))
    x = np.arange(len(groups))
    for i, (variant, entry) in enumerate(by_variant.items()):
      ax.bar(x + i * width, [entry[g]["mean"] if g in entry else 0 for g in groups], width,
             yerr=[entry[g]["std"] if g in entry else 0 for g in groups], label=variant,
             capsize=2)
    for b, style in zip(BASELINES, ("--", ":")):
      values = result["baselines"].get(task, {}).get(b, {})
      for j, g in enumerate(groups):
        if g in values:
          ax.hlines(values[g], j - width / 2, j + 0.8 - width / 2, colors="black",
                    linestyles=style, label=b if j == 0 else None)
    ax.set_xticks(x + 0.4 - width / 2, groups)
    ax.set_title(task)
    ax.set_ylabel("weighted F1")
    ax.legend(fontsize=6)
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def write(runs: list[tuple[str, str, pathlib.Path]], out_dirs: list[pathlib.Path],
          title: str, baseline: str = "", control: str = "", claims: str = "",
          published: str = "", task_order: list[str] = ()) -> dict:
  result = collect(runs)
  if task_order:
    result["tasks"] = {t: result["tasks"][t] for t in
                       [*task_order, *result["tasks"]] if t in result["tasks"]}
    result["tasks"] = dict(result["tasks"])
  if claims == "miniature":
    result["claims"] = miniature_claims(result, baseline, control)
  elif claims:
    raise ValueError(f"config.claims={claims!r}: known: miniature")
  if published:
    result["published"] = published_rows(result, published)
    result["published_source"] = published_lib.table(published)["source"]
  text = markdown(result, title)
  for out in out_dirs:
    out.mkdir(parents=True, exist_ok=True)
    files.write_json(out / "report.json", result)
    files.atomic_write_text(out / "report.md", text)
    plot(result, out / "report.png", title)
  return result
