"""SeqIO tasks that the evaluation job knows how to evaluate, the project's and a user's.

A registered SeqIO task is evaluated by what it declares:
  - a `ClassificationTask` declares its label set and prompt variants (a template and
    a verbalizer each); the job fills every variant with each example's `text` and ranks
    the labels' answers by log-likelihood (`evaluation.scoring`);
  - any other task is a generation task: its `inputs` text is the prompt, the model's
    continuation is scored against its `targets` text with the task's own `metric_fns`
    (`metric_fn(targets, predictions) -> {name: value}`, SeqIO's convention).
`TranslationTask` adds the two languages, so the job can filter directions.

Examples are read with the task's own `get_dataset` (its source and preprocessors, in
source order), so a user's filters and field mappings apply. A classification example
must keep the raw `text` and `label` features (the preprocessors here keep them; `id`
and `language` are optional).

Registering a classification task over a CSV file of one's own:

    from underrep_jax.data import eval_tasks
    eval_tasks.register_csv_classification(
        "my_reviews", {"test": "/data/reviews_test.csv"}, labels=("bad", "good"),
        templates=("Review: {text}\\nIs this review good or bad?",),
        verbalizer={"bad": "bad", "good": "good"}, language="sun")
"""

from collections.abc import Callable, Mapping, Sequence
import csv
import pathlib

import numpy as np
import seqio

from underrep_jax.data import prompts as prompt_lib
from underrep_jax.data import seqio_pipeline as sp
from underrep_jax.data.errors import DataError

CLASSIFICATION_FIELDS = ("id", "text", "label", "language")
UNKNOWN_LANGUAGE = "und"  # ISO 639 "undetermined", for tasks that name no language


class ClassificationTask(seqio.Task):
  """A SeqIO task with the label set and prompt variants rank classification needs."""

  def __init__(self, name: str, source, output_features, *, labels: Sequence[str],
               prompts: Sequence[prompt_lib.Prompt], language: str = UNKNOWN_LANGUAGE,
               **kwargs):
    super().__init__(name, source, output_features, **kwargs)
    if len(labels) < 2:
      raise ValueError(f"task {name}: a classification task needs at least 2 labels, "
                       f"got {list(labels)}")
    if not prompts:
      raise ValueError(f"task {name}: no prompt variants")
    for prompt in prompts:
      missing = [label for label in labels if label not in prompt.verbalizer]
      if missing:
        raise ValueError(f"task {name}: prompt {prompt.name} has no answer for labels "
                         f"{missing}")
    self.labels = tuple(labels)
    self.prompts = tuple(prompts)
    self.language = language

  def prompts_in(self, prompt_languages) -> list[prompt_lib.Prompt]:
    """The prompt variants in `prompt_languages` (all of them when none is asked for or
    none matches: a user's task may have prompts in one language only)."""
    chosen = [p for p in self.prompts
              if not prompt_languages or p.prompt_language in prompt_languages]
    return chosen or list(self.prompts)


class TranslationTask(seqio.Task):
  """A generation task from `source_language` into `target_language`."""

  def __init__(self, name: str, source, output_features, *, source_language: str,
               target_language: str, **kwargs):
    super().__init__(name, source, output_features, **kwargs)
    self.source_language = source_language
    self.target_language = target_language


def custom_prompts(templates: Sequence[str], verbalizer: Mapping[str, str],
                   prompt_language: str = prompt_lib.ENGLISH,
                   task_type: str = "custom") -> list[prompt_lib.Prompt]:
  """Prompt variants from plain templates: `{text}` is the example, `{language}` its
  language's name and `{options}` the answer words joined ("good or bad")."""
  out = []
  for index, template in enumerate(templates):
    if "{text}" not in template:
      raise ValueError(f"prompt template {template!r} has no {{text}} placeholder")
    out.append(prompt_lib.Prompt(task_type, prompt_language, index, template, dict(verbalizer)))
  return out


def register_classification(name: str, source: seqio.DataSource, *, labels: Sequence[str],
                            prompts: Sequence[prompt_lib.Prompt],
                            language: str = UNKNOWN_LANGUAGE,
                            metric_fns: Sequence[Callable] = ()) -> ClassificationTask:
  """Registers a rank-classification task over `source` rows with `text` and `label`
  (plus optional `id`, `language`). Training on it uses the first prompt variant."""
  if name in seqio.TaskRegistry.names():
    return seqio.TaskRegistry.get(name)
  return seqio.TaskRegistry.add(
      name, task_cls=ClassificationTask, source=source,
      preprocessors=[sp.classification_preprocessor(prompts[0], language),
                     *sp.tokenize_preprocessors()],
      output_features=sp.OUTPUT_FEATURES, metric_fns=list(metric_fns),
      shuffle_buffer_size=sp.SHUFFLE_BUFFER, labels=labels, prompts=prompts,
      language=language)


def csv_rows(path: str | pathlib.Path, *, text_field: str = "text",
             label_field: str = "label", id_field: str | None = None,
             language: str = UNKNOWN_LANGUAGE,
             labels: Sequence[str] | None = None) -> list[dict[str, str]]:
  """Rows {id, text, label, language} of a CSV file with a header; a missing column, an
  empty text or a label outside `labels` is a DataError naming file, row and field."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise DataError(f"{path}: no such file")
  rows = []
  with open(path, newline="", encoding="utf-8") as f:
    reader = csv.DictReader(f)
    header = reader.fieldnames or []
    for field in (text_field, label_field) + ((id_field,) if id_field else ()):
      if field not in header:
        raise DataError(f"{path}, row 1: no column {field!r} (columns: {', '.join(header)})")
    for row_number, record in enumerate(reader, start=2):
      text, label = (record.get(text_field) or "").strip(), (record.get(label_field) or "").strip()
      if not text:
        raise DataError(f"{path}, row {row_number}, field {text_field!r}: empty text")
      if labels is not None and label not in labels:
        raise DataError(f"{path}, row {row_number}, field {label_field!r}: label {label!r} "
                        f"is not one of {', '.join(labels)}")
      row_id = record[id_field].strip() if id_field else f"{path.stem}-{row_number}"
      rows.append(dict(id=row_id, text=text, label=label, language=language))
  if not rows:
    raise DataError(f"{path}: no data rows")
  return rows


def register_csv_classification(name: str, files: Mapping[str, str | pathlib.Path], *,
                                labels: Sequence[str], templates: Sequence[str],
                                verbalizer: Mapping[str, str] | None = None,
                                language: str = UNKNOWN_LANGUAGE,
                                prompt_language: str = prompt_lib.ENGLISH,
                                text_field: str = "text", label_field: str = "label",
                                id_field: str | None = None) -> ClassificationTask:
  """A classification task over CSV files, one per split ({"test": path, ...}).

  `verbalizer` maps each label to its answer word (default: the label itself). The files
  are read when a dataset is built, so registering costs nothing.
  """
  verbalizer = dict(verbalizer or {label: label for label in labels})
  read = lambda split: csv_rows(files[split], text_field=text_field, label_field=label_field,
                                id_field=id_field, language=language, labels=labels)
  source = sp.rows_source(read, CLASSIFICATION_FIELDS, splits=tuple(files))
  return register_classification(
      name, source, labels=labels, language=language,
      prompts=custom_prompts(templates, verbalizer, prompt_language))


def _text(value) -> str:
  if isinstance(value, bytes):
    return value.decode("utf-8")
  if isinstance(value, np.ndarray) and value.dtype == object:
    return _text(value.item())
  return str(value)


def examples(task: seqio.Task, split: str, limit: int = 0) -> list[dict[str, str]]:
  """The first `limit` (0: all) examples of a split, in source order, text fields as str.

  Classification examples give id, text, label and language; generation examples give
  id (when the source has one, else the position), inputs and targets.
  """
  if split not in task.splits:
    raise DataError(f"task {task.name} has no {split!r} split (it has: "
                    f"{', '.join(task.splits)})")
  ds = task.get_dataset(sequence_length=None, split=split, shuffle=False, use_cached=False,
                        seed=0)
  if limit:
    ds = ds.take(limit)
  out = []
  classification = isinstance(task, ClassificationTask)
  for position, ex in enumerate(ds.as_numpy_iterator()):
    row_id = _text(ex["id"]) if "id" in ex else str(position)
    if classification:
      for field in ("text", "label"):
        if field not in ex:
          raise DataError(f"task {task.name}: example {position} of {split!r} has no "
                          f"{field!r} feature; a classification task's preprocessors must "
                          "keep the raw text and label")
      label = _text(ex["label"])
      if label not in task.labels:
        raise DataError(f"task {task.name}, {split} example {row_id}: label {label!r} is "
                        f"not one of the task's labels {', '.join(task.labels)}")
      language = _text(ex["language"]) if "language" in ex else task.language
      out.append(dict(id=row_id, text=_text(ex["text"]), label=label, language=language))
    else:
      out.append(dict(id=row_id, inputs=_text(ex["inputs_pretokenized"]),
                      targets=_text(ex["targets_pretokenized"]).strip()))
  return out
