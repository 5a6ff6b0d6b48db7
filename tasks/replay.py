"""Experience replay: mix examples of earlier instruction data into an alignment stream.

The replay source is one of
  - a JSONL file of `{"inputs": ..., "targets": ...}` lines (xP3's fields);
  - a local Hugging Face dataset directory (`save_to_disk`, or JSON/parquet files);
  - `hf:<id>[:<config>]`, streamed from the Hub (the original used `hf:bigscience/xP3:en`);
  - a registered SeqIO task or mixture.

With `num_examples=r` (the original setting, r in {0, 100, 1k, 10k, 100k}) the source is
shuffled with the run's `seed` and its first r examples are kept; the two streams then
alternate strictly, one replay example and one alignment example in turn (replay first,
as the original's `datasets.interleave_datasets([replay, alignment])`), each repeated
forever, so the smaller one is cycled. With `rate=p` instead, the whole source is mixed
in at rate p (SeqIO's rate sampling).

Deliberate differences from the original: the r examples are a uniform sample of a local
source (the original streamed xP3 through a 1,000-example shuffle buffer; `hf:` sources
do the same here with a larger buffer), and the alternation is kept in the batches (the
original's Trainer reshuffled the interleaved examples, 1:1 only on average).

Decoder-only models read replay examples as xP3's one text f"{inputs} {targets}"
(`separator=" "`), as the original trained BLOOMZ on them; encoder-decoder models get
inputs and targets apart (`separator=""`).
"""

import functools
import hashlib
import pathlib
import re

import numpy as np
import seqio
import tensorflow as tf

from underrep_jax.data import seqio_pipeline as sp

DECODER_SEPARATOR = " "
REPLAY_FIELDS = ("id",) + sp.TEXT_FEATURES


def _slug(text: str) -> str:
  return re.sub(r"[^\w]+", "_", text).strip("_")


def _is_file_source(replay: str) -> bool:
  return (replay.startswith(sp.HUB_PREFIX) or replay.endswith(".jsonl")
          or pathlib.Path(replay).is_dir())


def _source_tag(replay: str) -> str:
  """A short, unique task-name part for a file, directory or Hub source."""
  if replay.startswith(sp.HUB_PREFIX):
    key, stem = replay, replay[len(sp.HUB_PREFIX):]
  else:
    key, stem = str(pathlib.Path(replay).resolve()), pathlib.Path(replay).stem
  return f"{_slug(stem)}_{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def _rows_task(name: str, read_rows) -> str:
  """Registers (once) a task over the rows `read_rows()` returns (read once, lazily)."""
  if name not in seqio.TaskRegistry.names():
    rows = functools.cache(read_rows)
    seqio.TaskRegistry.add(
        name,
        source=sp.rows_source(lambda split: rows(), REPLAY_FIELDS, splits=("train",)),
        preprocessors=sp.tokenize_preprocessors(),
        output_features=sp.OUTPUT_FEATURES,
        shuffle_buffer_size=sp.SHUFFLE_BUFFER,
    )
  return name


def jsonl_task(path: str | pathlib.Path) -> str:
  """Registers (once) a task over every line of a JSONL file of inputs/targets pairs."""
  return _rows_task(f"replay_jsonl_{_source_tag(str(path))}",
                    lambda: sp.read_jsonl_pairs(path))


def file_task(replay: str, num_examples: int | None = None, seed: int = 0,
              separator: str = DECODER_SEPARATOR) -> str:
  """Registers (once) a task over a file, directory or Hub source: with `num_examples`,
  the first r after a shuffle with `seed`; without, every example (local sources only)."""
  if replay.startswith(sp.HUB_PREFIX) and not num_examples:
    raise ValueError(f"replay {replay!r}: a streamed Hub dataset needs replay_examples > 0")
  join = "_joined" if separator else ""
  count = f"_r{num_examples}_seed{seed}" if num_examples else "_all"
  name = f"replay_{_source_tag(replay)}{count}{join}"

  def read_rows():
    if replay.startswith(sp.HUB_PREFIX):
      rows = sp.stream_hub_dataset(replay, num_examples, seed)
    else:
      rows = sp.read_replay_rows(replay)
      if num_examples:
        rows = sp.first_after_shuffle(rows, num_examples, seed, replay)
    return sp.joined(rows, separator)

  return _rows_task(name, read_rows)


def _selected_source(source: seqio.DataSource, num_examples: int, seed: int,
                     where: str) -> seqio.DataSource:
  """`source`'s train rows shuffled with `seed`, first `num_examples` kept (the cut sits in
  the source, before SeqIO repeats the data, so the r examples are cycled)."""
  @functools.cache
  def selected(split: str) -> dict[str, np.ndarray]:
    rows = list(source.get_dataset(split=split, shuffle=False).as_numpy_iterator())
    rows = sp.first_after_shuffle(rows, num_examples, seed, where)
    return {k: np.asarray([r[k] for r in rows]) for k in rows[0]}

  def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None):
    ds = tf.data.Dataset.from_tensor_slices(selected(split))
    if shuffle_files:
      ds = ds.shuffle(num_examples, seed=seed, reshuffle_each_iteration=True)
    return ds
  return seqio.FunctionDataSource(dataset_fn, splits=source.splits)


def _selected_task(task: seqio.Task, num_examples: int, seed: int) -> str:
  name = f"{task.name}_r{num_examples}_seed{seed}"
  if name not in seqio.TaskRegistry.names():
    seqio.TaskRegistry.add(
        name,
        source=_selected_source(task.source, num_examples, seed, f"task {task.name}"),
        preprocessors=task.preprocessors,
        output_features=task.output_features,
        metric_fns=[],
        shuffle_buffer_size=task.shuffle_buffer_size,
    )
  return name


def _selected(replay: str, num_examples: int, seed: int) -> list[tuple[str, float]]:
  """r examples of a registered task, or of a mixture split across its tasks by rate."""
  provider = seqio.get_mixture_or_task(replay)
  if isinstance(provider, seqio.Task):
    return [(_selected_task(provider, num_examples, seed), 1.0)]
  rates = {t.name: provider.get_rate(t) for t in provider.tasks}
  total = sum(rates.values())
  return [(_selected_task(t, max(1, round(num_examples * rates[t.name] / total)), seed),
           rates[t.name]) for t in provider.tasks]


class AlternatingMixture(seqio.Mixture):
  """Its `parts` (task or mixture names) in strict turn, one example each, forever.

  Every part repeats indefinitely (whatever `num_epochs` asks), so a smaller part is
  cycled while the larger one goes on; sharding, shuffling and seeds go to each part.
  """

  def __init__(self, name, tasks, default_rate=None, source_info=None, parts=()):
    super().__init__(name, tasks, default_rate=default_rate, source_info=source_info)
    self.parts = tuple(parts)

  def get_dataset(self, sequence_length=None, split="train", use_cached=False, shuffle=True,
                  seed=None, shard_info=None, num_epochs=None, trim_output_features=True,
                  **unused):
    keys = sorted(self.output_features)
    streams = []
    for i, part in enumerate(self.parts):
      ds = seqio.get_mixture_or_task(part).get_dataset(
          sequence_length, split=split, use_cached=use_cached, shuffle=shuffle,
          seed=None if seed is None else seed + i, shard_info=shard_info, num_epochs=None,
          trim_output_features=trim_output_features)
      streams.append(ds.map(lambda ex: {k: ex[k] for k in keys}))
    turns = tf.data.Dataset.range(len(streams)).repeat()
    return tf.data.Dataset.choose_from_datasets(streams, turns)


def with_replay(alignment: str, replay: str, num_examples: int | None = None,
                rate: float | None = None, seed: int = 0,
                separator: str = DECODER_SEPARATOR, name: str | None = None) -> str:
  """Registers (once) `alignment` mixed with `replay`; returns the mixture name.

  `num_examples=r`: r examples (shuffled with `seed`) alternating 1:1 with `alignment`;
  `rate=p`: the whole source at rate p. `num_examples=0` (or neither) means no replay.
  `separator` joins a file source's inputs and targets (" " for decoder-only models).
  """
  if num_examples is not None and num_examples < 0:
    raise ValueError(f"replay num_examples must be >= 0, got {num_examples}")
  if rate is not None and not 0.0 < rate < 1.0:
    raise ValueError(f"replay rate must be in (0, 1), got {rate}")
  if num_examples and rate is not None:
    raise ValueError(f"give replay_examples ({num_examples}, alternated 1:1) or "
                     f"replay_rate ({rate}), not both")
  if not replay or num_examples == 0 or (num_examples is None and rate is None):
    return alignment
  seqio.get_mixture_or_task(alignment)  # fails early with SeqIO's message if unknown
  if _is_file_source(replay):
    replay_tasks = [(file_task(replay, num_examples, seed, separator), 1.0)]
    tag = _source_tag(replay)
  else:
    seqio.get_mixture_or_task(replay)
    replay_tasks = (_selected(replay, num_examples, seed) if num_examples
                    else [(replay, 1.0)])
    tag = _slug(replay)
  if num_examples:
    suffix = f"r{num_examples}_seed{seed}"
  else:
    suffix = f"rate{rate:g}".replace(".", "p")
  name = name or f"{alignment}_replay_{tag}_{suffix}{'_joined' if separator else ''}"
  if name in seqio.MixtureRegistry.names():
    return name
  replay_mixture = f"{name}_source"
  if replay_mixture not in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.add(replay_mixture, replay_tasks)
  if num_examples:
    seqio.MixtureRegistry.add(name, [(replay_mixture, 1.0), (alignment, 1.0)],
                              mixture_cls=AlternatingMixture,
                              parts=(replay_mixture, alignment))
  else:
    seqio.MixtureRegistry.add(name, [(alignment, 1.0 - rate), (replay_mixture, rate)])
  return name
