"""Zero-shot evaluation job over registered SeqIO tasks and mixtures.

`config.tasks` and `config.mt_tasks` name tasks or mixtures (`tasks/evaluation.py`
registers the project's; `config.task_modules` imports a user's). Each task is evaluated
by what it declares (`data.eval_tasks`): a classification task by rank classification
over its prompt variants (`evaluation.scoring`: prompt once per example, labels from its
KV cache), any other task by generation (`evaluation.generation`) scored with the task's
own `metric_fns`. The model sits on the job's mesh; batches are split over the
data-parallel devices and hosts, and process 0 writes `evaluation.report`'s outputs.
"""

import collections
import pathlib

from absl import logging
import jax
import seqio

import tasks
from underrep_jax import errors
from underrep_jax import files
from underrep_jax import parallel
from underrep_jax.data import eval_tasks
from underrep_jax.evaluation import generation
from underrep_jax.evaluation import model_loading
from underrep_jax.evaluation import report
from underrep_jax.evaluation import scoring

split_list = tasks.registry.split_names


class Selection:
  """The tasks one run evaluates, grouped under the names the config gave them.

  A mixture's tasks report together under the mixture's name (`nusax_senti`: one row per
  language); a task named on its own reports under its own name.
  """

  def __init__(self):
    self.classification: dict[str, list[eval_tasks.ClassificationTask]] = {}
    self.generation: dict[str, list[seqio.Task]] = {}

  def add(self, group: str, task: seqio.Task) -> None:
    kind = (self.classification if isinstance(task, eval_tasks.ClassificationTask)
            else self.generation)
    kind.setdefault(group, []).append(task)

  def __bool__(self) -> bool:
    return bool(self.classification or self.generation)


def _keep_classification(task: eval_tasks.ClassificationTask, wanted: list[str]) -> bool:
  return not wanted or task.language in wanted


def _keep_generation(task: seqio.Task, wanted: list[str], pivot: str) -> bool:
  """Translation directions between the pivot and a wanted language; other generation
  tasks always."""
  if not isinstance(task, eval_tasks.TranslationTask):
    return True
  pair = (task.source_language, task.target_language)
  if pivot and pivot not in pair:
    return False
  return not wanted or any(lang in wanted for lang in pair if lang != pivot)


def select(config) -> Selection:
  """The registered tasks of `config.tasks` and `config.mt_tasks`, filtered by language.

  A name that leaves nothing after the filters is an error (an empty report would look
  like a result), as is a language that no named task has.
  """
  selection = Selection()
  languages, mt_languages = split_list(config.languages), split_list(config.mt_languages)
  for field, names in (("config.tasks", config.tasks), ("config.mt_tasks", config.mt_tasks)):
    for name in split_list(names):
      subtasks = tasks.registry.tasks_of(name, field)
      kept = [t for t in subtasks
              if (_keep_classification(t, languages)
                  if isinstance(t, eval_tasks.ClassificationTask)
                  else _keep_generation(t, mt_languages, config.mt_pivot))]
      if not kept:
        have = sorted({getattr(t, "language", None) or getattr(t, "target_language", "?")
                       for t in subtasks})
        raise errors.ConfigError(
            f"{field}: {name} has no task for the requested languages "
            f"({config.languages or config.mt_languages!r}, pivot {config.mt_pivot!r}); "
            f"its languages: {', '.join(have)}")
      for task in kept:
        selection.add(name, task)
  named = {t.language for group in selection.classification.values() for t in group}
  missing = [lang for lang in languages if lang not in named]
  if missing and selection.classification:
    logging.warning("no classification task for %s; skipped", ", ".join(missing))
  if not selection:
    raise errors.ConfigError("nothing to evaluate: config.tasks and config.mt_tasks are empty")
  return selection


def run_classification(config, model, selection: Selection) -> tuple[list[dict], dict]:
  if not selection.classification:
    return [], {}
  scorer = scoring.Scorer(model, batch_size=config.batch_size,
                          max_prompt_tokens=config.max_prompt_tokens)
  records, labels_by_group = [], {}
  for group, group_tasks in selection.classification.items():
    label_sets = {t.labels for t in group_tasks}
    if len(label_sets) > 1:
      raise errors.ConfigError(f"{group}: its tasks have different label sets; name them "
                               "one by one in config.tasks")
    labels_by_group[group] = list(group_tasks[0].labels)
    for task in group_tasks:
      rows = eval_tasks.examples(task, config.split, config.max_examples)
      if not rows:
        raise errors.DataError(f"{task.name}: no {config.split} examples to evaluate")
      variants = task.prompts_in(split_list(config.prompt_languages))
      logging.info("%s: %d examples x %d prompts", task.name, len(rows), len(variants))
      records += scoring.rank_classify(scorer, group, rows, variants, config.scoring,
                                       desc=f"{group}/{rows[0]['language']}")
  return records, labels_by_group


def _postprocess(task: seqio.Task, texts: list[str], rows: list[dict], is_target: bool):
  if task.postprocess_fn is None:
    return texts
  return [task.postprocess_fn(t, example=r, is_target=is_target) for t, r in zip(texts, rows)]


def task_metrics(task: seqio.Task, targets: list, predictions: list) -> dict[str, float]:
  """The task's own metric_fns, merged (SeqIO: metric_fn(targets, predictions) -> dict)."""
  if not task.metric_fns:
    raise errors.ConfigError(f"task {task.name} declares no metric_fns to score its "
                             "generations with")
  out = {}
  for metric_fn in task.metric_fns:
    out.update({k: float(v) for k, v in metric_fn(targets, predictions).items()})
  return out


def direction(task: seqio.Task) -> str:
  if isinstance(task, eval_tasks.TranslationTask):
    return f"{task.source_language}-{task.target_language}"
  return task.name


def run_generation(config, model, selection: Selection) -> tuple[dict, list[dict]]:
  """({group: {direction or task: metrics}}, one output row per example)."""
  if not selection.generation:
    return {}, []
  generator = generation.Generator(
      model, batch_size=config.batch_size, max_new_tokens=config.max_new_tokens,
      num_beams=config.num_beams, greedy=config.num_beams == 1,
      max_prompt_tokens=config.max_prompt_tokens)
  out, rows_out = collections.defaultdict(dict), []
  for group, group_tasks in selection.generation.items():
    for task in group_tasks:
      rows = eval_tasks.examples(task, config.split, config.mt_max_examples)
      if not rows:
        raise errors.DataError(f"{task.name}: no {config.split} examples to generate for")
      hyps = generator.generate([r["inputs"] for r in rows], desc=task.name)
      targets = _postprocess(task, [r["targets"] for r in rows], rows, is_target=True)
      predictions = _postprocess(task, hyps, rows, is_target=False)
      out[group][direction(task)] = task_metrics(task, targets, predictions)
      rows_out.extend({"id": r["id"], "task": task.name, "direction": direction(task),
                       "prediction": h, "gold": r["targets"]} for r, h in zip(rows, hyps))
  return dict(out), rows_out


def run(config, workdir: str) -> None:
  workdir = pathlib.Path(workdir)
  tasks.registry.import_modules(config.task_modules)
  selection = select(config)
  topology = parallel.Topology.from_config(config.mesh)
  model = model_loading.source(config.model).load(topology)
  records, labels_by_group = run_classification(config, model, selection)
  translation, generations = run_generation(config, model, selection)
  if jax.process_index() != 0:
    return
  workdir.mkdir(parents=True, exist_ok=True)
  if generations:
    files.write_jsonl(workdir / "translations.jsonl", generations)
  report.write_all(workdir, records, labels_by_group, translation,
                   title=f"Zero-shot evaluation of {model.source}",
                   extra={"scoring": config.scoring})
  logging.info("wrote %s", workdir / "report.md")
