"""Evaluation tasks: every dataset x language (x direction for translation).

The one table of what the evaluation job can evaluate. Classification tasks are named
`<dataset>_<lang>` (e.g. `nusax_senti_jav`, `sib200_topic_bjn`) and declare their label
set and all six prompt variants (3 English, 3 Indonesian; `data.eval_tasks`); training
on one uses the first English prompt. Translation tasks are `<dataset>_<src>_<tgt>`
(e.g. `nusax_mt_ind_jav`), generation tasks scored by chrF++ and BLEU. Each dataset also
has a mixture over all its languages, named after the dataset.
"""

import dataclasses
import functools
from collections.abc import Callable

from absl import logging
import seqio

from underrep_jax import errors
from underrep_jax.data import eval_tasks
from underrep_jax.data import prompts
from underrep_jax.data import readers
from underrep_jax.data import seqio_pipeline as sp
from underrep_jax.evaluation import metrics


@dataclasses.dataclass(frozen=True)
class ClassificationDataset:
  name: str
  read: Callable[[str, str], list[dict]]  # (language, split) -> rows
  task_type: str
  verbalizer: str


CLASSIFICATION_DATASETS = (
    ClassificationDataset("nusax_senti", readers.nusax_sentiment, prompts.SENTIMENT,
                          "sentiment"),
    ClassificationDataset("nusatranslation_senti", readers.nusatranslation_sentiment,
                          prompts.SENTIMENT, "sentiment"),
    ClassificationDataset("nusaparagraph_emot", functools.partial(readers.nusaparagraph, "emot"),
                          prompts.EMOTION, "emotion"),
    ClassificationDataset("nusaparagraph_topic",
                          functools.partial(readers.nusaparagraph, "topic"), prompts.TOPIC,
                          "nusaparagraph_topic"),
    ClassificationDataset("sib200_topic", readers.sib200_topic, prompts.TOPIC, "sib200_topic"),
)

DATASETS_BY_NAME = {d.name: d for d in CLASSIFICATION_DATASETS}


def classification_dataset(name: str) -> ClassificationDataset:
  """The dataset behind a classification mixture name (`nusax_senti`), for jobs that
  build their own prompts from its rows (X-ICL)."""
  if name not in DATASETS_BY_NAME:
    raise errors.ConfigError(f"unknown classification dataset {name!r}; known: "
                             f"{', '.join(DATASETS_BY_NAME)}")
  return DATASETS_BY_NAME[name]


def dataset_languages(dataset: str, requested: list[str]) -> list[str]:
  """The requested languages that `dataset` has (all of them when none are requested);
  none left is an error, since an empty report would look like a result."""
  available = readers.available_languages(dataset)
  if not requested:
    return available
  skipped = [lang for lang in requested if lang not in available]
  if skipped:
    logging.warning("%s has no data for %s; skipped", dataset, ", ".join(skipped))
  kept = [lang for lang in requested if lang in available]
  if not kept:
    raise errors.ConfigError(f"{dataset} has no data for the requested languages "
                             f"{','.join(requested)!r}; it has: {', '.join(available)}")
  return kept


# Translation corpora: (dataset name, pair reader, pivots). Directions: pivot <-> each
# other language of the corpus.
TRANSLATION_DATASETS = (
    ("nusax_mt", readers.nusax_mt_pairs, ("ind", "eng")),
    ("nusatranslation_mt", readers.nusatranslation_mt_pairs, ("ind",)),
)

CLASSIFICATION_FIELDS = eval_tasks.CLASSIFICATION_FIELDS
PAIR_FIELDS = ("id", "source", "target", "source_language", "target_language")


def classification_task_name(dataset: str, language: str) -> str:
  return f"{dataset}_{language}"


def translation_task_name(dataset: str, source: str, target: str) -> str:
  return f"{dataset}_{source}_{target}"


def register_classification(dataset: ClassificationDataset, language: str) -> str:
  name = classification_task_name(dataset.name, language)
  labels = readers.LABELS[dataset.name]
  variants = prompts.classification_prompts(dataset.task_type, dataset.verbalizer,
                                            labels=labels)
  eval_tasks.register_classification(
      name, sp.rows_source(functools.partial(dataset.read, language), CLASSIFICATION_FIELDS),
      labels=labels, prompts=variants, language=language,
      metric_fns=[metrics.classification_metrics])
  return name


def register_translation(dataset: str, read: Callable[[str, str, str], list[dict]],
                         source: str, target: str) -> str:
  name = translation_task_name(dataset, source, target)
  if name in seqio.TaskRegistry.names():
    return name
  seqio.TaskRegistry.add(
      name, task_cls=eval_tasks.TranslationTask,
      source=sp.rows_source(lambda split: read(source, target, split), PAIR_FIELDS),
      preprocessors=[sp.translation_preprocessor(source, target),
                     *sp.tokenize_preprocessors()],
      output_features=sp.OUTPUT_FEATURES,
      metric_fns=[metrics.translation_metrics],
      shuffle_buffer_size=sp.SHUFFLE_BUFFER,
      source_language=source, target_language=target,
  )
  return name


def _register_mixture(name: str, task_names: list[str]) -> None:
  if name not in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.add(name, task_names, default_rate=1.0)


def register_all() -> None:
  for dataset in CLASSIFICATION_DATASETS:
    names = [register_classification(dataset, lang)
             for lang in readers.available_languages(dataset.name)]
    _register_mixture(dataset.name, names)
  for dataset, read, pivots in TRANSLATION_DATASETS:
    names = []
    for source, target in translation_directions(dataset, pivots):
      names.append(register_translation(dataset, read, source, target))
    _register_mixture(dataset, names)


def translation_directions(dataset: str, pivots: tuple[str, ...]) -> list[tuple[str, str]]:
  """Both directions between each pivot and every other language, each pair once."""
  directions = []
  for lang in readers.available_languages(dataset):
    for pivot in pivots:
      if lang == pivot or (lang in pivots and pivots.index(lang) < pivots.index(pivot)):
        continue
      directions += [(pivot, lang), (lang, pivot)]
  return directions
