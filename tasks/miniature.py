"""The miniature InstructAlign experiment's data (configs/experiments/miniature.py).

A small decoder trained from scratch stands in for the instruction-tuned LLM. It only
ever sees English and Indonesian, and only train splits:

  miniature_lm        language modelling on eng/ind text: FLORES (SIB-200 train), the
                      NusaX-MT train split and the Indonesian side of the NusaTranslation-MT
                      train split (inputs "", targets the sentence);
  miniature_instruct  instruction data in both languages, in the evaluation prompts'
                      formats (all six prompts of each task): NusaX sentiment and SIB-200
                      topics (eng and ind train rows), and English<->Indonesian
                      translation (NusaX-MT and FLORES train pairs). It is also the replay
                      source of the alignment stage;
  miniature_base      the two, at rates 1 : 4 (the base model's training mixture; at
                      1 : 1 a 600-step base stayed at the majority baseline on NusaX
                      sentiment, at 1 : 4 a 1,000-step base reaches weighted F1 64 (eng)
                      and 66 (ind), measured on 30 test examples per language);
  miniature_sib200_topic
                      evaluation only: SIB-200 topics as `sib200_topic`, each split's rows
                      interleaved by label, so that the first n test examples (the
                      evaluation's `max_examples`) are stratified (SIB-200's files are
                      sorted by category);
  miniature_align_<set>
                      InstructAlign's objective set `<set>` over NusaX-MT (pivot ind) and
                      FLORES (pivot eng; Indonesian included) train pairs with the seen
                      languages (`tasks.instructalign.alignment_mixture`).

No evaluation test example reaches these tasks: a text equal to a test text of NusaX
sentiment, NusaTranslation sentiment or SIB-200 (any language) is dropped, and so is a
NusaTranslation-MT row whose local sentence is one (its Indonesian side is that test
example's original). tests/test_experiments_data.py checks every training text of the
experiment, alignment pairs and replay included, against the test splits.

Import this module (`--config.task_modules=tasks.miniature`) to register them.
"""

import functools
import hashlib

import seqio

from tasks import instructalign as ia_tasks
from underrep_jax.data import languages
from underrep_jax.data import prompts
from underrep_jax.data import readers
from underrep_jax.data import seqio_pipeline as sp

PRETRAINED = ("eng", "ind")
SPLIT = "train"
FIELDS = ("id", "inputs", "targets")
# The evaluation's classification tasks whose eng/ind train rows become instructions:
# dataset -> (reader, prompt task type, verbalizer).
INSTRUCTION_TASKS = {
    "nusax_senti": (readers.nusax_sentiment, prompts.SENTIMENT, "sentiment"),
    "sib200_topic": (readers.sib200_topic, prompts.TOPIC, "sib200_topic"),
}
LM_TASK = "miniature_lm"
INSTRUCT_TASK = "miniature_instruct"
BASE_MIXTURE = "miniature_base"
INSTRUCT_RATE = 4.0  # instruction data : LM text in the base mixture (see the docstring)
SIB200_STRATIFIED = "miniature_sib200_topic"


# The evaluated classification datasets whose test texts no training text may equal.
EVALUATED = {"nusax_senti": readers.nusax_sentiment,
             "nusatranslation_senti": readers.nusatranslation_sentiment,
             "sib200_topic": readers.sib200_topic}


@functools.cache
def test_texts() -> frozenset[str]:
  """Every test text of the evaluated datasets, all languages (stripped)."""
  out = set()
  for dataset, read in EVALUATED.items():
    for lang in readers.available_languages(dataset):
      out |= {r["text"].strip() for r in read(lang, "test")}
  return frozenset(out)


def _clean(*texts: str) -> bool:
  return not any(t.strip() in test_texts() for t in texts)


@functools.cache
def lm_rows() -> tuple[dict, ...]:
  """Every distinct eng/ind train sentence, as {id, inputs: "", targets: text}, less any
  that is an evaluation test text (NusaTranslation has untranslated sentences: the
  Indonesian side of an MT row can be a local-language sentiment test text) or whose
  NusaTranslation-MT partner is one (its Indonesian original)."""
  texts: dict[str, str] = {}
  for lang in PRETRAINED:
    for row in readers.sib200_topic(lang, SPLIT):
      texts.setdefault(row["text"], f"flores_{lang}_{row['id']}")
  for row in readers.nusax_mt(SPLIT):
    for lang in PRETRAINED:
      texts.setdefault(row[lang], f"nusaxmt_{lang}_{row['id']}")
  for lang in readers.available_languages("nusatranslation_mt"):
    if lang == "ind":
      continue
    for row in readers.nusatranslation_mt_pairs("ind", lang, SPLIT):
      if _clean(row["target"]):
        texts.setdefault(row["source"], f"nusatranslation_ind_{lang}_{row['id']}")
  return tuple({"id": i, "inputs": "", "targets": t} for t, i in texts.items() if _clean(t))


def _pick(key: str, n: int) -> int:
  """A fixed choice among n for an example (the same on every run and host)."""
  return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) % n


@functools.cache
def instruction_rows() -> tuple[dict, ...]:
  """Classification in all six evaluation prompts, and eng<->ind translation."""
  rows = []
  for dataset, (read, task_type, verbalizer) in INSTRUCTION_TASKS.items():
    variants = prompts.classification_prompts(task_type, verbalizer,
                                              labels=readers.LABELS[dataset])
    for lang in PRETRAINED:
      for row in read(lang, SPLIT):
        if not _clean(row["text"]):
          continue
        for prompt in variants:
          rows.append({"id": f"{dataset}_{lang}_{row['id']}_{prompt.name}",
                       "inputs": prompt.fill(row["text"], lang),
                       "targets": prompt.answer(row["label"])})
  pairs = [("nusaxmt", p) for p in readers.nusax_mt_pairs("eng", "ind", SPLIT)]
  pairs += [("flores", p) for p in readers.flores_pairs("eng", "ind", SPLIT)]
  for corpus, pair in pairs:
    if not _clean(pair["source"], pair["target"]):
      continue
    for src, tgt, a, b in (("eng", "ind", pair["source"], pair["target"]),
                           ("ind", "eng", pair["target"], pair["source"])):
      key = f"{corpus}_{src}_{tgt}_{pair['id']}"
      prompt_language = prompts.PROMPT_LANGUAGES[_pick(key, len(prompts.PROMPT_LANGUAGES))]
      rows.append({"id": key,
                   "inputs": prompts.fill_mt_prompt(a, src, tgt, prompt_language),
                   "targets": prompts.ANSWER_PREFIX + b})
  return tuple(rows)


def _rows_task(name: str, read) -> str:
  if name not in seqio.TaskRegistry.names():
    seqio.TaskRegistry.add(
        name,
        source=sp.rows_source(lambda split: list(read()) if split == SPLIT else [], FIELDS,
                              splits=(SPLIT,)),
        preprocessors=sp.tokenize_preprocessors(),
        output_features=sp.OUTPUT_FEATURES,
        shuffle_buffer_size=sp.SHUFFLE_BUFFER,
    )
  return name


def seen_languages() -> list[str]:
  return languages.codes("seen")


def alignment_mixture(objective_set: str) -> str:
  """InstructAlign's `objective_set` on NusaX-MT (ind pivot) + FLORES (eng pivot) pairs of
  the seen languages (and ind, for FLORES); the train split is what the job reads."""
  name = f"miniature_align_{objective_set}"
  if name in seqio.MixtureRegistry.names():
    return name
  seen = seen_languages()
  nusax = ia_tasks.alignment_mixture(
      objective_set, "nusaxmt", "ind",
      [c for c in readers.available_languages("nusax_mt") if c in seen])
  flores = ia_tasks.alignment_mixture(
      objective_set, "flores", "eng",
      [c for c in readers.available_languages("flores") if c in seen or c == "ind"])
  seqio.MixtureRegistry.add(name, [(nusax, 1.0), (flores, 1.0)])
  return name


def label_interleaved(rows: list[dict]) -> list[dict]:
  """`rows` reordered round-robin over their labels (each label's rows in file order), so
  that the first n of them (the evaluation's `max_examples`) are stratified by label.
  SIB-200's files are sorted by category: their first 40 rows share one label."""
  by_label: dict[str, list[dict]] = {}
  for row in rows:
    by_label.setdefault(row["label"], []).append(row)
  out, queues = [], [list(v) for _, v in sorted(by_label.items())]
  while any(queues):
    for queue in queues:
      if queue:
        out.append(queue.pop(0))
  return out


def register_sib200_stratified() -> str:
  """`miniature_sib200_topic`: SIB-200 topic classification (all languages, the same six
  prompts and labels as `sib200_topic`) with each split's rows label-interleaved."""
  from underrep_jax.data import eval_tasks
  dataset = "sib200_topic"
  labels = readers.LABELS[dataset]
  variants = prompts.classification_prompts(prompts.TOPIC, dataset, labels=labels)
  names = []
  for lang in readers.available_languages(dataset):
    name = f"{SIB200_STRATIFIED}_{lang}"
    eval_tasks.register_classification(
        name, sp.rows_source(lambda split, lang=lang: label_interleaved(
            readers.sib200_topic(lang, split)), eval_tasks.CLASSIFICATION_FIELDS),
        labels=labels, prompts=variants, language=lang)
    names.append(name)
  if SIB200_STRATIFIED not in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.add(SIB200_STRATIFIED, names, default_rate=1.0)
  return SIB200_STRATIFIED


def register_all() -> None:
  register_sib200_stratified()
  _rows_task(LM_TASK, lm_rows)
  _rows_task(INSTRUCT_TASK, instruction_rows)
  if BASE_MIXTURE not in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.add(BASE_MIXTURE, [(LM_TASK, 1.0), (INSTRUCT_TASK, INSTRUCT_RATE)])
  from underrep_jax.data import instructalign as ia_data
  for objective_set in ia_data.OBJECTIVE_SETS:
    alignment_mixture(objective_set)


register_all()
