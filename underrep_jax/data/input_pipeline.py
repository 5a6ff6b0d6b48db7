"""Host-local training batches from a SeqIO task or mixture.

Each host reads its own shard (`seqio.ShardInfo(process_index, process_count)`) and
yields numpy batches of `global_batch_size / process_count` examples; the training loop
turns them into one global array. The stream is a pure function of (mixture, seed,
shard), so resuming at step k skips k batches and continues exactly where it stopped.
"""

from collections.abc import Iterator, Mapping
import dataclasses

import numpy as np
import seqio
import tensorflow as tf  # noqa: F401  (keeps TF on the host; see seqio_pipeline)

from underrep_jax.data import seqio_pipeline  # noqa: F401  (hides GPUs from TF)

DECODER_ONLY, ENCODER_DECODER = "decoder", "encoder_decoder"
LOSS_ON_TARGETS, LOSS_ON_ALL = "targets", "all"


@dataclasses.dataclass(frozen=True)
class InputConfig:
  mixture: str
  split: str = "train"
  inputs_length: int = 96
  targets_length: int = 32
  global_batch_size: int = 8
  architecture: str = DECODER_ONLY
  pack: bool = True
  loss_on: str = LOSS_ON_TARGETS  # decoder-only: "targets" (SeqIO) or "all" (original IA)
  seed: int = 0


def feature_converter(config: InputConfig) -> seqio.FeatureConverter:
  if config.loss_on not in (LOSS_ON_TARGETS, LOSS_ON_ALL):
    raise ValueError(f"loss_on must be {LOSS_ON_TARGETS!r} or {LOSS_ON_ALL!r}, "
                     f"got {config.loss_on!r}")
  if config.architecture == DECODER_ONLY:
    return seqio.DecoderFeatureConverter(
        loss_on_targets_only=config.loss_on == LOSS_ON_TARGETS, pack=config.pack)
  if config.architecture == ENCODER_DECODER:
    return seqio.EncDecFeatureConverter(pack=config.pack)
  raise ValueError(f"unknown architecture {config.architecture!r}; "
                   f"use {DECODER_ONLY!r} or {ENCODER_DECODER!r}")


def task_feature_lengths(config: InputConfig) -> Mapping[str, int]:
  return {"inputs": config.inputs_length, "targets": config.targets_length}


def host_batch_size(global_batch_size: int, process_count: int) -> int:
  if global_batch_size % process_count:
    raise ValueError(f"global batch size {global_batch_size} is not divisible by "
                     f"{process_count} processes")
  return global_batch_size // process_count


def batches(config: InputConfig, start_step: int = 0, process_index: int = 0,
            process_count: int = 1, num_epochs: int | None = None
            ) -> Iterator[dict[str, np.ndarray]]:
  """Yields this host's batches from step `start_step` on (None epochs: forever)."""
  ds = seqio.get_dataset(
      config.mixture, task_feature_lengths=task_feature_lengths(config),
      feature_converter=feature_converter(config), dataset_split=config.split,
      shuffle=True, num_epochs=num_epochs, seed=config.seed,
      shard_info=seqio.ShardInfo(index=process_index, num_shards=process_count))
  ds = ds.batch(host_batch_size(config.global_batch_size, process_count), drop_remainder=True)
  if start_step:
    ds = ds.skip(start_step)
  for batch in ds.as_numpy_iterator():
    yield {k: np.asarray(v, np.int32) for k, v in batch.items()}
