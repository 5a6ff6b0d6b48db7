"""Experience replay: mix examples of earlier instruction data into an alignment stream.

The replay source is any registered task or mixture, or a JSONL file of
`{"inputs": ..., "targets": ...}` lines (for instance xP3 for BLOOMZ). Either

  - `num_examples=r` keeps the first r replay examples and interleaves the two streams
    1:1, cycling the smaller one (the original setting, r in {0, 100, 1k, 10k, 100k}); or
  - `rate=p` mixes replay at rate p (and alignment at 1 - p), optionally with r as well.
"""

import hashlib
import pathlib
import re

import seqio

from underrep_jax.data import seqio_pipeline as sp


def _slug(text: str) -> str:
  return re.sub(r"[^\w]+", "_", text).strip("_")


def jsonl_task(path: str | pathlib.Path) -> str:
  """Registers (once) a task over a JSONL file of inputs/targets pairs."""
  path = pathlib.Path(path).resolve()
  digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
  name = f"replay_jsonl_{_slug(path.stem)}_{digest}"
  if name not in seqio.TaskRegistry.names():
    seqio.TaskRegistry.add(
        name,
        source=sp.jsonl_source(path),
        preprocessors=sp.tokenize_preprocessors(),
        output_features=sp.OUTPUT_FEATURES,
        shuffle_buffer_size=sp.SHUFFLE_BUFFER,
    )
  return name


def _first_examples(source: seqio.DataSource, num_examples: int) -> seqio.DataSource:
  """The first `num_examples` rows of `source` in file order, shuffled among themselves."""
  def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None):
    ds = source.get_dataset(split=split, shuffle=False, seed=seed).take(num_examples)
    if shuffle_files:
      ds = ds.shuffle(num_examples, seed=seed, reshuffle_each_iteration=True)
    return ds
  return seqio.FunctionDataSource(dataset_fn, splits=source.splits)


def _limited_task(task: seqio.Task, num_examples: int) -> str:
  """A copy of `task` that keeps only its first `num_examples` source examples (the cut
  sits in the source, before SeqIO repeats the data, so the r examples are cycled)."""
  name = f"{task.name}_first{num_examples}"
  if name not in seqio.TaskRegistry.names():
    seqio.TaskRegistry.add(
        name,
        source=_first_examples(task.source, num_examples),
        preprocessors=task.preprocessors,
        output_features=task.output_features,
        metric_fns=[],
        shuffle_buffer_size=task.shuffle_buffer_size,
    )
  return name


def _limited(replay: str, num_examples: int) -> list[tuple[str, float]]:
  """Limits a task or mixture to `num_examples`, split across tasks by mixture rate."""
  provider = seqio.get_mixture_or_task(replay)
  if isinstance(provider, seqio.Task):
    return [(_limited_task(provider, num_examples), 1.0)]
  rates = {t.name: provider.get_rate(t) for t in provider.tasks}
  total = sum(rates.values())
  out = []
  for task in provider.tasks:
    share = max(1, round(num_examples * rates[task.name] / total))
    out.append((_limited_task(task, share), rates[task.name]))
  return out


def with_replay(alignment: str, replay: str, num_examples: int | None = None,
                rate: float | None = None, name: str | None = None) -> str:
  """Registers (once) `alignment` mixed with `replay`; returns the mixture name.

  `num_examples=0` (or neither argument) means no replay: `alignment` is returned.
  """
  if num_examples is not None and num_examples < 0:
    raise ValueError(f"replay num_examples must be >= 0, got {num_examples}")
  if rate is not None and not 0.0 < rate < 1.0:
    raise ValueError(f"replay rate must be in (0, 1), got {rate}")
  if not replay or num_examples == 0 or (num_examples is None and rate is None):
    return alignment
  seqio.get_mixture_or_task(alignment)  # fails early with SeqIO's message if unknown
  is_file = replay.endswith(".jsonl")
  source = jsonl_task(replay) if is_file else replay
  if not is_file:
    seqio.get_mixture_or_task(source)
  replay_tasks = _limited(source, num_examples) if num_examples else [(source, 1.0)]
  replay_rate = rate if rate is not None else 0.5
  tag = f"r{num_examples}" if num_examples else f"rate{replay_rate:g}".replace(".", "p")
  name = name or f"{alignment}_replay_{_slug(pathlib.Path(replay).stem if is_file else replay)}_{tag}"
  if name in seqio.MixtureRegistry.names():
    return name
  replay_mixture = f"{name}_source"
  if replay_mixture not in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.add(replay_mixture, replay_tasks)
  seqio.MixtureRegistry.add(name, [(alignment, 1.0 - replay_rate),
                                   (replay_mixture, replay_rate)])
  return name
