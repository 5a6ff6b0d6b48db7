"""InstructAlign alignment tasks and mixtures.

Tasks: `ia_<objective>_<corpus>_<pivot>_<lang>`, one per objective (mlm, tlm, mt, xss;
`xsscorrupt` for XSS with noise-corrupted negatives), parallel corpus and language, over
both directions of the pivot-language pairs.

Mixtures: `instructalign_<set>_<corpus>_<pivot>` for each named objective set (pair,
pair_xss, random, random_xss, bilingual_xss, and the single objectives) over the
languages InstructAlign teaches. Every (objective, language) task has the same rate, so
each example's objective is drawn uniformly from the set, as in the original work.

Build your own with `alignment_mixture(...)`; see the README ("Registering your own
mixtures").
"""

from collections.abc import Callable, Sequence
import dataclasses
import functools

import seqio

from underrep_jax.data import instructalign
from underrep_jax.data import languages
from underrep_jax.data import readers
from underrep_jax.data import seqio_pipeline as sp


@dataclasses.dataclass(frozen=True)
class Corpus:
  name: str
  read: Callable[[str, str, str], list[dict]]  # (pivot, language, split) -> pair rows
  dataset: str  # name for readers.available_languages
  pivots: tuple[str, ...]


CORPORA = {
    "flores": Corpus("flores", readers.flores_pairs, "flores", ("eng",)),
    "nusaxmt": Corpus("nusaxmt", readers.nusax_mt_pairs, "nusax_mt", ("eng", "ind")),
    "nusatranslation": Corpus("nusatranslation", readers.nusatranslation_mt_pairs,
                              "nusatranslation_mt", ("ind",)),
}
ALIGNMENT_SPLITS = ("train", "validation", "test")


def default_languages(corpus: str, pivot: str) -> list[str]:
  """The paper's set: the 'seen' languages, plus Indonesian when English is the pivot."""
  wanted = set(languages.codes("seen")) | ({"ind"} if pivot == "eng" else set())
  return [c for c in readers.available_languages(CORPORA[corpus].dataset)
          if c in wanted and c != pivot]


def _objective_tag(objective: str, xss_negatives: str) -> str:
  if objective == instructalign.XSS and xss_negatives == instructalign.CORRUPT:
    return "xsscorrupt"
  return objective


def _check(corpus: str, pivot: str, language: str) -> Corpus:
  if corpus not in CORPORA:
    raise ValueError(f"unknown parallel corpus {corpus!r}; known: {sorted(CORPORA)}")
  spec = CORPORA[corpus]
  available = readers.available_languages(spec.dataset)
  for code in (pivot, language):
    languages.get(code)
    if code not in available:
      raise ValueError(f"corpus {corpus!r} has no language {code!r}; it has {available}")
  if pivot == language:
    raise ValueError(f"pivot and language are both {pivot!r}")
  return spec


@functools.cache
def _corpus(corpus: str, pivot: str, language: str) -> sp.AlignmentCorpus:
  spec = CORPORA[corpus]
  return sp.AlignmentCorpus(lambda split: spec.read(pivot, language, split), pivot, language)


def alignment_task(objective: str, corpus: str, pivot: str, language: str,
                   xss_negatives: str = instructalign.DEFAULT_XSS_NEGATIVES) -> str:
  """Registers (once) and returns the name of one objective's task on one language."""
  _check(corpus, pivot, language)
  name = f"ia_{_objective_tag(objective, xss_negatives)}_{corpus}_{pivot}_{language}"
  if name in seqio.TaskRegistry.names():
    return name
  data = _corpus(corpus, pivot, language)
  seqio.TaskRegistry.add(
      name,
      source=data.source(ALIGNMENT_SPLITS),
      preprocessors=[seqio.CacheDatasetPlaceholder(),
                     sp.alignment_preprocessor(objective, data, xss_negatives),
                     *sp.tokenize_preprocessors()],
      output_features=sp.OUTPUT_FEATURES,
      shuffle_buffer_size=sp.SHUFFLE_BUFFER,
  )
  return name


def mixture_name(objective_set: str, corpus: str, pivot: str,
                 languages_: Sequence[str] | None = None,
                 xss_negatives: str = instructalign.DEFAULT_XSS_NEGATIVES) -> str:
  name = f"instructalign_{objective_set}_{corpus}_{pivot}"
  if languages_ is not None and list(languages_) != default_languages(corpus, pivot):
    name += "_" + "_".join(languages_)
  if xss_negatives != instructalign.DEFAULT_XSS_NEGATIVES and (
      instructalign.XSS in instructalign.OBJECTIVE_SETS[objective_set]):
    name += f"_{xss_negatives}"
  return name


def alignment_mixture(objective_set: str = "pair_xss", corpus: str = "flores",
                      pivot: str | None = None, languages_: Sequence[str] | None = None,
                      xss_negatives: str = instructalign.DEFAULT_XSS_NEGATIVES,
                      name: str | None = None) -> str:
  """Registers (once) an InstructAlign mixture and returns its name.

  objective_set: a key of `instructalign.OBJECTIVE_SETS`; corpus: a key of `CORPORA`;
  pivot: the high-resource side (default: the corpus's first pivot); languages_: the
  languages to align (default: `default_languages`).
  """
  if objective_set not in instructalign.OBJECTIVE_SETS:
    raise ValueError(f"unknown objective set {objective_set!r}; known: "
                     f"{sorted(instructalign.OBJECTIVE_SETS)}")
  if corpus not in CORPORA:
    raise ValueError(f"unknown parallel corpus {corpus!r}; known: {sorted(CORPORA)}")
  pivot = pivot or CORPORA[corpus].pivots[0]
  langs = list(languages_) if languages_ is not None else default_languages(corpus, pivot)
  if not langs:
    raise ValueError(f"no languages to align for corpus {corpus!r} with pivot {pivot!r}")
  name = name or mixture_name(objective_set, corpus, pivot, langs, xss_negatives)
  if name in seqio.MixtureRegistry.names():
    return name
  tasks = [alignment_task(obj, corpus, pivot, lang, xss_negatives)
           for obj in instructalign.OBJECTIVE_SETS[objective_set] for lang in langs]
  seqio.MixtureRegistry.add(name, tasks, default_rate=1.0)
  return name


def register_all() -> None:
  for corpus, spec in CORPORA.items():
    for pivot in spec.pivots:
      for lang in readers.available_languages(spec.dataset):
        if lang in spec.pivots:
          continue
        for objective in instructalign.OBJECTIVES:
          alignment_task(objective, corpus, pivot, lang)
      for objective_set in instructalign.OBJECTIVE_SETS:
        alignment_mixture(objective_set, corpus, pivot)
