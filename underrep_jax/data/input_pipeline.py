"""Host-local training batches from a SeqIO task or mixture.

Each host reads its own shard (`seqio.ShardInfo(process_index, process_count)`) and
yields numpy batches of `global_batch_size / process_count` examples; the training loop
turns them into one global array. The stream is a pure function of (mixture, seed,
shard), so resuming at step k skips k batches and continues exactly where it stopped.

Sequence lengths, decoder-only: either one budget `max_length` shared by prompt and
target (the original InstructAlign: the prompt with its answer is one text, cut on the
right at 128 tokens, so a long prompt shortens the answer or drops it and no EOS follows
a cut), or separate `inputs_length`/`targets_length` (SeqIO's convention: each side is
cut on its own and the target always keeps its EOS). Encoder-decoder models always use
the separate lengths (the original also cut source and target separately there).

Token layout, decoder-only: SeqIO's converters shift the sequence right behind a 0 start
token (T5X's prefix-LM convention). Causal models are pretrained, scored and sampled
without that extra token (BLOOM's id 0 is `<unk>`, Llama-3's is "!"), so by default
(`prefix_lm=False`) the batches are rewritten to the Hugging Face causal-LM layout: the
model reads the tokens themselves and position t predicts token t + 1, within its own
example; the first token of each example is context only, exactly as transformers'
`labels=input_ids` loss. `prefix_lm=True` keeps SeqIO's layout and its prompt mask.
"""

from collections.abc import Iterator, Mapping
import dataclasses

import numpy as np
import seqio
import tensorflow as tf

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
  max_length: int = 0  # decoder-only: one budget for inputs + targets; 0: the split above
  prefix_lm: bool = False  # decoder-only: keep SeqIO's prefix-LM layout (see module doc)


class SharedBudgetConverter(seqio.PrefixLMFeatureConverter):
  """Prefix-LM features whose prompt and target share one `max_length` budget.

  The concatenation inputs + targets (targets ending in EOS) is cut on the right at
  `max_length`, as the original's tokenizer(prompt + answer, truncation=True) did: a
  target that does not fit is shortened (and loses its EOS), or dropped when the prompt
  alone fills the budget. Model features are `max_length` long.
  """

  def __init__(self, max_length: int, **kwargs):
    if max_length <= 0:
      raise ValueError(f"max_length must be positive, got {max_length}")
    super().__init__(**kwargs)
    self.max_length = max_length

  def _trim_jointly(self, ex):
    ex = dict(ex)
    ex["inputs"] = ex["inputs"][:self.max_length]
    room = tf.maximum(self.max_length - tf.size(ex["inputs"]), 0)
    ex["targets"] = ex["targets"][:room]
    return ex

  def _convert_features(self, ds, task_feature_lengths):
    ds = ds.map(self._trim_jointly, num_parallel_calls=tf.data.AUTOTUNE)
    return super()._convert_features(ds, task_feature_lengths)

  def _concat_task_feature_lengths(self, task_feature_lengths):
    lengths = dict(super()._concat_task_feature_lengths(task_feature_lengths))
    for key in ("targets", "inputs_width", "inputs_width_add_pos"):
      lengths[key] = self.max_length
    return lengths

  def get_model_feature_lengths(self, task_feature_lengths):
    return super().get_model_feature_lengths({"targets": self.max_length})


def feature_converter(config: InputConfig) -> seqio.FeatureConverter:
  if config.loss_on not in (LOSS_ON_TARGETS, LOSS_ON_ALL):
    raise ValueError(f"loss_on must be {LOSS_ON_TARGETS!r} or {LOSS_ON_ALL!r}, "
                     f"got {config.loss_on!r}")
  if config.max_length and config.architecture != DECODER_ONLY:
    raise ValueError(f"max_length={config.max_length} is a decoder-only budget; "
                     f"{config.architecture!r} models use inputs_length/targets_length")
  if config.architecture == DECODER_ONLY and config.max_length:
    return SharedBudgetConverter(
        config.max_length, loss_on_targets_only=config.loss_on == LOSS_ON_TARGETS,
        pack=config.pack)
  if config.architecture == DECODER_ONLY:
    return seqio.DecoderFeatureConverter(
        loss_on_targets_only=config.loss_on == LOSS_ON_TARGETS, pack=config.pack)
  if config.architecture == ENCODER_DECODER:
    return seqio.EncDecFeatureConverter(pack=config.pack)
  raise ValueError(f"unknown architecture {config.architecture!r}; "
                   f"use {DECODER_ONLY!r} or {ENCODER_DECODER!r}")


def task_feature_lengths(config: InputConfig) -> Mapping[str, int]:
  """What each task trims to; under a shared budget each side may take all of it (the
  converter then cuts the concatenation)."""
  if config.max_length:
    return {"inputs": config.max_length, "targets": config.max_length}
  return {"inputs": config.inputs_length, "targets": config.targets_length}


def sequence_length(config: InputConfig) -> int:
  """Tokens of one example, prompt and target together (for FLOPs per token)."""
  return config.max_length or config.inputs_length + config.targets_length


def host_batch_size(global_batch_size: int, process_count: int) -> int:
  if global_batch_size % process_count:
    raise ValueError(f"global batch size {global_batch_size} is not divisible by "
                     f"{process_count} processes")
  return global_batch_size // process_count


def causal_lm_layout(batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """SeqIO decoder features [B, T] -> the causal-LM layout (see the module docstring).

  Inputs become the tokens; the target and loss weight at t are those of token t + 1,
  zeroed where t + 1 starts another packed example or is padding. The prefix mask is
  dropped: a causal model attends causally.
  """
  tokens = batch["decoder_target_tokens"]
  weights = batch["decoder_loss_weights"]
  same_example = (tokens[:, 1:] != 0) if "decoder_segment_ids" not in batch else (
      batch["decoder_segment_ids"][:, 1:] == batch["decoder_segment_ids"][:, :-1])
  targets = np.zeros_like(tokens)
  targets[:, :-1] = tokens[:, 1:] * same_example  # 0 (padding) across example boundaries
  next_weights = np.zeros_like(weights)
  next_weights[:, :-1] = weights[:, 1:] * same_example
  out = {k: v for k, v in batch.items() if k != "decoder_causal_attention"}
  out.update(decoder_input_tokens=tokens, decoder_target_tokens=targets,
             decoder_loss_weights=next_weights)
  return out


def batch_spec(config: InputConfig) -> dict[str, tuple[tuple[int, int], np.dtype]]:
  """{feature: ((global batch, length), int32)} of the batches `batches` yields, from
  SeqIO's converter alone (no data read), so a step can be compiled before any exists."""
  lengths = dict(feature_converter(config).get_model_feature_lengths(
      task_feature_lengths(config)))
  if config.architecture == DECODER_ONLY and not config.prefix_lm:
    lengths.pop("decoder_causal_attention", None)  # what `causal_lm_layout` drops
  return {name: ((config.global_batch_size, int(length)), np.dtype(np.int32))
          for name, length in lengths.items()}


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
  causal = config.architecture == DECODER_ONLY and not config.prefix_lm
  for batch in ds.as_numpy_iterator():
    batch = {k: np.asarray(v, np.int32) for k, v in batch.items()}
    yield causal_lm_layout(batch) if causal else batch
