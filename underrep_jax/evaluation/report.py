"""Evaluation outputs: predictions.jsonl, metrics.json, report.md and PNG plots.

Classification metrics per task, language and prompt (plus the mean over all prompts and,
for records that name their `prompt_language`, the mean over each prompt language's
prompts, `mean_eng` / `mean_ind`: the English-prompt mean is a headline setting), group
means over pretrained/seen/unseen languages, and two baselines per language:
majority (always the most frequent gold label) and random (uniform guesses; the
expected metrics are estimated by a seeded simulation of `RANDOM_DRAWS` draws, since
expected F1 has no simple closed form).
"""

import collections
import json
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from underrep_jax import files  # noqa: E402
from underrep_jax.data import languages  # noqa: E402
from underrep_jax.evaluation import metrics as metric_lib  # noqa: E402

CLASSIFICATION_KEYS = ("accuracy", "macro_f1", "weighted_f1")
HEADLINE = "weighted_f1"
RANDOM_DRAWS = 1000
GROUP_COLORS = {"pretrained": "tab:gray", "seen": "tab:blue", "unseen": "tab:orange"}


def write_predictions(path: pathlib.Path, records) -> None:
  files.write_jsonl(path, records)  # refuses NaN: a bare NaN is not JSON


def read_predictions(path: pathlib.Path) -> list[dict]:
  out = []
  with open(path, encoding="utf-8") as f:
    for line_number, line in enumerate(f, start=1):
      try:
        out.append(json.loads(line))
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}, line {line_number}: not JSON ({e})") from None
  return out


def _mean(dicts: list[dict]) -> dict[str, float]:
  keys = dicts[0].keys()
  return {k: float(np.mean([d[k] for d in dicts])) for k in keys}


def confusion_metrics(gold: np.ndarray, pred: np.ndarray, num_labels: int) -> dict[str, float]:
  """classification_metrics on label indices, from a confusion matrix (fast, for the
  random-baseline simulation; equal to scikit-learn's, tested)."""
  cm = np.bincount(gold * num_labels + pred, minlength=num_labels ** 2).reshape(
      num_labels, num_labels).astype(np.float64)
  tp, support, predicted = np.diag(cm), cm.sum(1), cm.sum(0)
  precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
  recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
  denom = precision + recall
  f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
  present = (support + predicted) > 0  # scikit-learn averages over labels seen in either
  return {"accuracy": float(tp.sum() / len(gold)), "macro_f1": float(f1[present].mean()),
          "weighted_f1": float((f1 * support).sum() / support.sum())}


def baselines(gold: list[str], labels: list[str], seed: int = 0) -> dict[str, dict]:
  counts = collections.Counter(gold)
  majority = max(labels, key=lambda label: (counts[label], -labels.index(label)))
  rng = np.random.default_rng(seed)
  gold_index = np.array([labels.index(g) for g in gold])
  draws = [confusion_metrics(gold_index, rng.integers(0, len(labels), len(gold)), len(labels))
           for _ in range(RANDOM_DRAWS)]
  return {"majority": metric_lib.classification_metrics(gold, [majority] * len(gold)),
          "random": _mean(draws)}


def prompt_language_means(per_prompt: dict[str, dict], prompt_languages: dict[str, str]
                          ) -> dict[str, dict]:
  """{"mean_<lang>": metrics averaged over exactly the prompts in that language}."""
  out = {}
  for language in sorted(set(prompt_languages.values())):
    members = [m for name, m in per_prompt.items() if prompt_languages.get(name) == language]
    if members:
      out[f"mean_{language}"] = _mean(members)
  return out


def classification_summary(records: list[dict], labels_by_task: dict[str, list[str]]) -> dict:
  """{task: {language: {metrics of the prompt mean, prompts: {...}, mean_<prompt language>:
  {...}, majority, random}}}."""
  grouped = collections.defaultdict(lambda: collections.defaultdict(dict))
  prompt_languages = {}
  for r in records:
    grouped[r["task"]][r["language"]].setdefault(r["prompt"], []).append(r)
    if "prompt_language" in r:
      prompt_languages[r["prompt"]] = r["prompt_language"]
  out = {}
  for task, by_language in grouped.items():
    out[task] = {}
    for language, by_prompt in by_language.items():
      per_prompt = {name: metric_lib.classification_metrics([r["gold"] for r in rows],
                                                            [r["prediction"] for r in rows])
                    for name, rows in sorted(by_prompt.items())}
      gold = [r["gold"] for r in next(iter(by_prompt.values()))]
      entry = _mean(list(per_prompt.values()))
      entry.update(prompt_language_means(per_prompt, prompt_languages))
      entry.update(prompts=per_prompt, examples=len(gold),
                   **baselines(gold, list(labels_by_task[task])))
      out[task][language] = entry
  return out


def group_means(summary: dict, keys=CLASSIFICATION_KEYS) -> dict:
  """{task: {group: mean over the group's languages}} (groups with no language omitted)."""
  out = {}
  for task, by_language in summary.items():
    out[task] = {}
    for group in languages.GROUPS:
      members = [m for lang, m in by_language.items() if _group(lang) == group]
      if members:
        out[task][group] = {k: float(np.mean([m[k] for m in members])) for k in keys}
        for name in _language_mean_names(members):
          out[task][group][name] = {k: float(np.mean([m[name][k] for m in members]))
                                    for k in keys}
  return out


def _language_mean_names(entries) -> list[str]:
  """The mean_<prompt language> keys every entry has."""
  names = [set(k for k in e if k.startswith("mean_")) for e in entries]
  return sorted(set.intersection(*names)) if names else []


def _group(code: str) -> str:
  try:
    return languages.get(code.split("-")[-1]).group
  except Exception:  # a direction like "eng-sun" is grouped by its target side
    return "other"


def _fmt(x: float) -> str:
  return f"{100 * x:.1f}"


def markdown(classification: dict, translation: dict, title: str) -> str:
  lines = [f"# {title}", ""]
  for task, by_language in classification.items():
    prompt_names = sorted({p for m in by_language.values() for p in m["prompts"]})
    language_means = _language_mean_names(list(by_language.values()))
    mean_heads = "".join(f" {n.replace('_', ' ')} prompts |" for n in language_means)
    lines += [f"## {task} (weighted F1 x100; accuracy / macro F1 in metrics.json)", "",
              "| language | group | " + " | ".join(prompt_names) +
              " | mean |" + mean_heads + " majority | random |",
              "|---|---|" + "---|" * (len(prompt_names) + len(language_means) + 3)]
    for lang, m in by_language.items():
      cells = [_fmt(m["prompts"][p][HEADLINE]) if p in m["prompts"] else "" for p in prompt_names]
      means = "".join(f" {_fmt(m[n][HEADLINE])} |" for n in language_means)
      lines.append(f"| {lang} | {_group(lang)} | " + " | ".join(cells) +
                   f" | **{_fmt(m[HEADLINE])}** |" + means +
                   f" {_fmt(m['majority'][HEADLINE])} | {_fmt(m['random'][HEADLINE])} |")
    lines += ["", "| group | accuracy | macro F1 | weighted F1 |" +
              "".join(f" weighted F1, {n.replace('mean_', '')} prompts |"
                      for n in language_means),
              "|---|---|---|---|" + "---|" * len(language_means)]
    for group, m in group_means({task: by_language})[task].items():
      lines.append(f"| {group} | " + " | ".join(_fmt(m[k]) for k in CLASSIFICATION_KEYS) +
                   " |" + "".join(f" {_fmt(m[n][HEADLINE])} |" for n in language_means))
    lines.append("")
  for task, by_direction in translation.items():
    lines += [f"## {task}", "", "| direction | chrF++ | BLEU |", "|---|---|---|"]
    for direction, m in by_direction.items():
      lines.append(f"| {direction} | {m['chrf++']:.1f} | {m['bleu']:.1f} |")
    lines.append("")
  return "\n".join(lines)


def bar_plot(values: dict[str, float], path: pathlib.Path, title: str,
             ylabel: str = "weighted F1", references: dict[str, float] | None = None) -> None:
  """One bar per language, coloured by group (pretrained / seen / unseen)."""
  fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(values) + 2), 3.5))
  names = list(values)
  colors = [GROUP_COLORS.get(_group(n), "tab:green") for n in names]
  ax.bar(names, [values[n] for n in names], color=colors)
  for label, y in (references or {}).items():
    ax.axhline(y, linestyle="--", linewidth=1, color="black" if label == "majority" else "red",
               label=label)
  handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in GROUP_COLORS.values()]
  extra = ax.get_legend_handles_labels()
  ax.legend(handles + extra[0], list(GROUP_COLORS) + extra[1], fontsize=7)
  ax.set_title(title)
  ax.set_ylabel(ylabel)
  ax.tick_params(axis="x", rotation=45)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def write_all(workdir: pathlib.Path, records: list[dict], labels_by_task: dict,
              translation: dict | None = None, title: str = "Evaluation",
              extra: dict | None = None) -> dict:
  """Writes predictions.jsonl, metrics.json, report.md and one PNG per task."""
  workdir.mkdir(parents=True, exist_ok=True)
  write_predictions(workdir / "predictions.jsonl", records)
  classification = classification_summary(records, labels_by_task) if records else {}
  translation = translation or {}
  result = dict(classification)
  result.update(translation)
  result["group_means"] = group_means(classification)
  result.update(extra or {})
  files.write_json(workdir / "metrics.json", result)
  files.atomic_write_text(workdir / "report.md", markdown(classification, translation, title))
  for task, by_language in classification.items():
    refs = {"majority": float(np.mean([m["majority"][HEADLINE] for m in by_language.values()])),
            "random": float(np.mean([m["random"][HEADLINE] for m in by_language.values()]))}
    bar_plot({l: m[HEADLINE] for l, m in by_language.items()}, workdir / f"{task}.png",
             f"{task} (mean over prompts)", references=refs)
  for task, by_direction in translation.items():
    bar_plot({d: m["chrf++"] for d, m in by_direction.items()}, workdir / f"{task}.png", task,
             ylabel="chrF++")
  return result
