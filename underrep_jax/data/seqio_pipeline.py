"""SeqIO building blocks: data sources over our readers and the preprocessors.

`tasks/` registers tasks from these pieces; this module is where the work happens.
TensorFlow stays here and in `tasks/`: models and training code never import it.

Randomness: stochastic preprocessors (noise, templates, XSS negatives) run after
`seqio.CacheDatasetPlaceholder`, so SeqIO repeats the source *before* them and every
epoch draws new noise; their per-example seeds come from SeqIO's map seed manager, so
`get_dataset(seed=S)` gives the same stream every time.
"""

from collections.abc import Callable, Sequence
import json
import pathlib

import numpy as np
import seqio
import tensorflow as tf

from underrep_jax.data import instructalign
from underrep_jax.data import languages
from underrep_jax.data import prompts
from underrep_jax.data import vocabularies
from underrep_jax.data.errors import DataError

# The input pipeline runs on host CPUs; TensorFlow must not claim accelerator memory
# that JAX needs.
tf.config.set_visible_devices([], "GPU")

SPLITS = ("train", "validation", "test")
# Examples each task shuffles after preprocessing. The sources already shuffle their rows
# fully, so this only needs to decorrelate neighbours; a large buffer would make every
# task preprocess that many examples before the first batch.
SHUFFLE_BUFFER = 128
TEXT_FEATURES = ("inputs", "targets")

# inputs get no EOS: decoder-only models read inputs and targets as one sequence.
OUTPUT_FEATURES = {
    "inputs": seqio.Feature(vocabulary=vocabularies.ACTIVE, add_eos=False, required=False),
    "targets": seqio.Feature(vocabulary=vocabularies.ACTIVE, add_eos=True),
}


def rows_to_dataset(rows: Sequence[dict], fields: Sequence[str],
                    int_fields: Sequence[str] = ()) -> tf.data.Dataset:
  columns = {f: [str(r[f]) for r in rows] for f in fields}
  columns.update({f: np.asarray([int(r[f]) for r in rows], np.int64) for f in int_fields})
  if not rows:
    columns = {f: tf.constant([], tf.string) for f in fields}
    columns.update({f: tf.constant([], tf.int64) for f in int_fields})
  return tf.data.Dataset.from_tensor_slices(columns)


def rows_source(read: Callable[[str], Sequence[dict]], fields: Sequence[str],
                splits: Sequence[str] = SPLITS, int_fields: Sequence[str] = ()
                ) -> seqio.FunctionDataSource:
  """A SeqIO source over `read(split) -> rows`; files are read when a dataset is built."""
  def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
    rows = read(split)
    ds = rows_to_dataset(rows, fields, int_fields)
    if shuffle_files and rows:
      # A full shuffle of the raw rows is cheap, and new each epoch; the Task's own buffer
      # after the (expensive) preprocessing can then stay small (SHUFFLE_BUFFER).
      ds = ds.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    return ds
  return seqio.FunctionDataSource(dataset_fn, splits=splits)


# ----------------------------------------------------------------------------- evaluation

def classification_preprocessor(prompt: prompts.Prompt, language: str):
  """Fills one prompt: inputs = prompt with the text, targets = the label word."""
  head, tail = prompt.template.split("{text}")
  context = dict(language=prompts.language_name(language, prompt.prompt_language),
                 options=prompts.join_options(list(prompt.verbalizer.values()),
                                              prompt.prompt_language))
  head, tail = head.format(**context), tail.format(**context)
  labels = tf.constant(list(prompt.verbalizer.keys()))
  words = tf.constant([prompts.ANSWER_PREFIX + w for w in prompt.verbalizer.values()])

  @seqio.map_over_dataset
  def fill_prompt(ex):
    index = tf.argmax(tf.cast(tf.equal(labels, ex["label"]), tf.int32))
    out = dict(ex)
    out["inputs"] = tf.strings.join([head, ex["text"], tail])
    out["targets"] = tf.gather(words, index)
    return out
  return fill_prompt


def translation_preprocessor(source: str, target: str, prompt_language: str = prompts.ENGLISH):
  head, tail = prompts.fill_mt_prompt("{text}", source, target, prompt_language).split("{text}")

  @seqio.map_over_dataset
  def fill_prompt(ex):
    out = dict(ex)
    out["inputs"] = tf.strings.join([head, ex["source"], tail])
    out["targets"] = tf.strings.join([prompts.ANSWER_PREFIX, ex["target"]])
    return out
  return fill_prompt


# ----------------------------------------------------------------------------- InstructAlign

ALIGNMENT_FIELDS = ("id", "split", "source", "target", "source_language", "target_language")


class AlignmentCorpus:
  """Both directions of a parallel corpus between a pivot language and one other.

  `read(split)` returns pair rows with `source`/`target` texts of `pivot`/`language`.
  Rows are cached per split so that XSS "mismatch" negatives can draw other sentences.
  """

  def __init__(self, read: Callable[[str], Sequence[dict]], pivot: str, language: str):
    self._read = read
    self.pivot, self.language = pivot, language
    self._cache: dict[str, list[dict]] = {}

  def rows(self, split: str) -> list[dict]:
    if split not in self._cache:
      pairs = self._read(split)
      if not pairs:
        raise DataError(f"parallel corpus {self.pivot}-{self.language}:{split} is empty")
      names = (languages.english_name(self.pivot), languages.english_name(self.language))
      rows = []
      for direction in (0, 1):
        src_name, tgt_name = names if direction == 0 else names[::-1]
        for i, p in enumerate(pairs):
          src, tgt = (p["source"], p["target"]) if direction == 0 else (p["target"], p["source"])
          rows.append(dict(id=f"{p['id']}:{direction}", split=split, index=i, source=src,
                           target=tgt, source_language=src_name, target_language=tgt_name))
      self._cache[split] = rows
    return self._cache[split]

  def sentences(self, split: str, language_name: str) -> list[str]:
    """Sentences in `language_name`, indexed like the pairs of that direction's rows."""
    return [r["target"] for r in self.rows(split) if r["target_language"] == language_name]

  def source(self, splits: Sequence[str]) -> seqio.FunctionDataSource:
    return rows_source(self.rows, ALIGNMENT_FIELDS, splits=splits, int_fields=("index",))


def _rng_from_seed(seed: np.ndarray) -> np.random.Generator:
  return np.random.default_rng([int(s) % 2**32 for s in np.ravel(seed)])


def alignment_preprocessor(objective: str, corpus: AlignmentCorpus,
                           xss_negatives: str = instructalign.DEFAULT_XSS_NEGATIVES):
  """Turns a parallel row into an `objective` example with a random template and noise."""
  if objective not in instructalign.OBJECTIVES:
    raise ValueError(f"unknown InstructAlign objective {objective!r}")
  if xss_negatives not in instructalign.XSS_NEGATIVES:
    raise ValueError(f"unknown XSS negative type {xss_negatives!r}; "
                     f"choose one of {instructalign.XSS_NEGATIVES}")

  def build(seed, index, split, source, target, source_language, target_language):
    tgt_name = target_language.decode()
    pair = instructalign.Pair(source.decode(), target.decode(), source_language.decode(),
                              tgt_name)
    distractors = (corpus.sentences(split.decode(), tgt_name)
                   if objective == instructalign.XSS else ())
    ex = instructalign.make_example(objective, pair, _rng_from_seed(seed),
                                    distractors=distractors, pair_index=int(index),
                                    xss_negatives=xss_negatives)
    return (ex.inputs.encode(), (prompts.ANSWER_PREFIX + ex.targets).encode(),
            np.int64(ex.template))

  @seqio.map_over_dataset(num_seeds=1)
  def make(ex, seed):
    inputs, targets, template = tf.numpy_function(
        build, [seed, ex["index"], ex["split"], ex["source"], ex["target"],
                ex["source_language"], ex["target_language"]],
        [tf.string, tf.string, tf.int64], stateful=False)
    inputs.set_shape([])
    targets.set_shape([])
    template.set_shape([])
    return dict(id=ex["id"], inputs=inputs, targets=targets, objective=objective,
                template=template)
  return make


# ----------------------------------------------------------------------------- replay

def read_jsonl_pairs(path: str | pathlib.Path) -> list[dict]:
  """Reads `{"inputs": ..., "targets": ...}` lines; bad lines name file, line and field."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise DataError(f"{path}: replay file not found")
  rows, line_numbers = [], []
  with path.open("rb") as f:
    for line_number, raw in enumerate(f, start=1):
      try:
        line = raw.decode("utf-8")
      except UnicodeDecodeError as e:
        raise DataError(f"{path}, line {line_number}: not UTF-8 (byte 0x{raw[e.start]:02x} "
                        f"at column {e.start + 1}); re-encode the file as UTF-8") from None
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        raise DataError(f"{path}, line {line_number}: not valid JSON ({e.msg})") from None
      if not isinstance(row, dict):
        raise DataError(f"{path}, line {line_number}: expected a JSON object")
      rows.append(dict(row, id=row.get("id", line_number)))
      line_numbers.append(line_number)
  return _checked_pairs(rows, str(path), lambda i: f"line {line_numbers[i]}")


def jsonl_source(path: str | pathlib.Path) -> seqio.FunctionDataSource:
  return rows_source(lambda split: read_jsonl_pairs(path), ("id",) + TEXT_FEATURES,
                     splits=("train",))


HUB_PREFIX = "hf:"
HUB_SHUFFLE_BUFFER = 10_000  # a streamed Hub dataset is shuffled through this buffer


def _checked_pairs(rows, where: str, locate=lambda index: f"row {index}") -> list[dict]:
  """`{"id", "inputs", "targets"}` rows from dataset rows; a bad row is named by `where`
  (the file or dataset) and `locate(index)` (its row, or its line in a file)."""
  out = []
  for index, row in enumerate(rows):
    for field in TEXT_FEATURES:
      value = row.get(field)
      if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}, {locate(index)}, field '{field}': missing or empty string "
                        "(replay data needs xP3-style 'inputs' and 'targets' text)")
    out.append({"id": str(row.get("id", index)), "inputs": row["inputs"],
                "targets": row["targets"]})
  if not out:
    raise DataError(f"{where}: no examples")
  return out


def read_dataset_dir(path: str | pathlib.Path) -> list[dict]:
  """A local Hugging Face dataset: a `save_to_disk` directory (its train split when it
  holds several), or a directory of JSON Lines / JSON / parquet files."""
  import datasets  # only replay from datasets needs it
  path = pathlib.Path(path)
  if not path.is_dir():
    raise DataError(f"{path}: replay dataset directory not found")
  if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
    data = datasets.load_from_disk(str(path))
    if isinstance(data, datasets.DatasetDict):
      if "train" not in data:
        raise DataError(f"{path}: the saved dataset has splits {sorted(data)}, no 'train'")
      data = data["train"]
    return _checked_pairs(data, str(path))
  for builder, patterns in (("parquet", ("*.parquet",)), ("json", ("*.jsonl", "*.json"))):
    files = sorted(str(f) for pattern in patterns for f in path.glob(pattern))
    if files:
      data = datasets.load_dataset(builder, data_files=files, split="train")
      return _checked_pairs(data, str(path))
  raise DataError(f"{path}: neither a saved dataset (dataset_info.json) nor .jsonl/.json/"
                  ".parquet files")


def stream_hub_dataset(spec: str, num_examples: int, seed: int) -> list[dict]:
  """`hf:<id>[:<config>]`: the first `num_examples` of the Hub dataset's train split,
  streamed and shuffled with `seed` through a buffer, as the original drew xP3."""
  import datasets
  dataset_id, _, config = spec[len(HUB_PREFIX):].partition(":")
  stream = datasets.load_dataset(dataset_id, config or None, split="train", streaming=True)
  stream = stream.shuffle(seed=seed, buffer_size=HUB_SHUFFLE_BUFFER).take(num_examples)
  rows = _checked_pairs(list(stream), spec)
  if len(rows) < num_examples:
    raise DataError(f"{spec}: replay_examples={num_examples} but the dataset has only "
                    f"{len(rows)} examples")
  return rows


def read_replay_rows(spec: str) -> list[dict]:
  """Every example of a local replay source: a .jsonl file or a dataset directory."""
  if pathlib.Path(spec).is_dir():
    return read_dataset_dir(spec)
  return read_jsonl_pairs(spec)


def first_after_shuffle(rows: Sequence[dict], num_examples: int, seed: int,
                        where: str) -> list[dict]:
  """The replay sample: `rows` shuffled with `seed`, then the first `num_examples`."""
  if num_examples > len(rows):
    raise DataError(f"{where}: replay_examples={num_examples} but the source has only "
                    f"{len(rows)} examples")
  order = np.random.default_rng(seed).permutation(len(rows))[:num_examples]
  return [rows[i] for i in order]


def joined(rows: Sequence[dict], separator: str) -> list[dict]:
  """Targets prefixed by `separator`: a decoder-only model then reads inputs and targets
  as xP3's one text f"{inputs} {targets}" (separator " "), as the original trained it."""
  return [dict(r, targets=separator + r["targets"]) for r in rows]


def tokenize_preprocessors() -> list:
  return [seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim]
