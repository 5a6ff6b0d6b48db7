"""Losses and model adapters.

A loss function has the shape `loss_fn(params, batch, rng) -> (loss_sum, weight, metrics)`:
  loss_sum: scalar sum of the per-unit losses (tokens for language modelling, examples for
    a contrastive loss);
  weight: scalar number of units (the normaliser); the reported loss is the ratio;
  metrics: dict of scalar sums over the same units, reported divided by `weight`.
Sums, not means, so that gradient accumulation over microbatches normalises once by the
total weight and gives the same update as one big batch.

A model adapter `adapter(params, batch, rng) -> logits` is the only model-specific piece
for language modelling: it knows which batch features the module takes. Those here follow
the SeqIO feature-converter names and the model zoo's call convention
`module.apply({'params': p}, tokens, ..., segment_ids=..., positions=...) -> [B, T, V]`.
"""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

Batch = Mapping[str, jax.Array]
Adapter = Callable[[Any, Batch, jax.Array], jax.Array]
LossFn = Callable[[Any, Batch, jax.Array], tuple[jax.Array, jax.Array, dict[str, jax.Array]]]

LOSS_ON = ("targets", "all")


def decoder_only_adapter(module, prefix_lm: bool = False, **apply_kwargs) -> Adapter:
  """Logits of a decoder-only LM from DecoderFeatureConverter batches.

  Packing features (`decoder_segment_ids`, `decoder_positions`) are forwarded when
  present. The attention is causal by default, the mask BLOOM, Llama and XGLM are
  pretrained, scored, sampled and exported with: SeqIO's prefix-LM batches carry
  `decoder_causal_attention` (the prompt attends to itself bidirectionally), and with
  `loss_on="all"` that would let a prompt position see the token it must predict. Only
  `prefix_lm=True` (a model pretrained as a prefix LM) forwards it as `causal_attention`.
  `apply_kwargs` (e.g. deterministic=False) go to every call; the rng is the dropout rng.
  """
  features = [("decoder_segment_ids", "segment_ids"), ("decoder_positions", "positions")]
  if prefix_lm:
    features.append(("decoder_causal_attention", "causal_attention"))

  def adapter(params, batch, rng):
    kwargs = dict(apply_kwargs)
    for feature, arg in features:
      if feature in batch:
        kwargs[arg] = batch[feature]
    return module.apply({"params": params}, batch["decoder_input_tokens"],
                        rngs={"dropout": rng}, **kwargs)

  return adapter


def encoder_decoder_adapter(module, **apply_kwargs) -> Adapter:
  """Logits of an encoder-decoder LM from EncDecFeatureConverter batches (packed or not)."""

  def adapter(params, batch, rng):
    kwargs = dict(apply_kwargs)
    for feature in ("encoder_segment_ids", "encoder_positions", "decoder_segment_ids",
                    "decoder_positions"):
      if feature in batch:
        kwargs[feature] = batch[feature]
    return module.apply({"params": params}, batch["encoder_input_tokens"],
                        batch["decoder_input_tokens"], rngs={"dropout": rng}, **kwargs)

  return adapter


def cross_entropy(logits: jax.Array, targets: jax.Array, weights: jax.Array,
                  z_loss: float = 0.0) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
  """Weighted token cross-entropy in float32: (loss_sum, weight, metric sums).

  `z_loss` adds z_loss * log(Z)^2 per token (PaLM/T5X), which keeps the softmax
  normaliser near 1 in low precision; it is included in loss_sum and reported separately.
  """
  logits = logits.astype(jnp.float32)
  weights = weights.astype(jnp.float32)
  log_z = jax.nn.logsumexp(logits, axis=-1)
  target_logits = jnp.take_along_axis(logits, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
  nll = log_z - target_logits
  correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
  metrics = {"nll": jnp.sum(nll * weights), "accuracy": jnp.sum(correct * weights)}
  loss = nll
  if z_loss:
    z = z_loss * jnp.square(log_z)
    metrics["z_loss"] = jnp.sum(z * weights)
    loss = loss + z
  return jnp.sum(loss * weights), jnp.sum(weights), metrics


def loss_weights(batch: Batch, loss_on: str = "targets", pad_id: int = 0) -> jax.Array:
  """Which target positions count: the converter's weights, or every non-pad token.

  "targets" uses `decoder_loss_weights` (SeqIO: target tokens only for prefix LM and
  encoder-decoder; all tokens for a plain decoder task); "all" puts the loss on the whole
  packed sequence, prompt included (the original InstructAlign recipe).
  """
  if loss_on == "targets":
    return batch["decoder_loss_weights"]
  if loss_on == "all":
    return (batch["decoder_target_tokens"] != pad_id).astype(jnp.float32)
  raise ValueError(f"loss_on must be one of {LOSS_ON}, got {loss_on!r}")


def token_loss(adapter: Adapter, loss_on: str = "targets", z_loss: float = 0.0,
               pad_id: int = 0) -> LossFn:
  """Next-token cross-entropy loss for any LM reachable through `adapter`."""
  if loss_on not in LOSS_ON:
    raise ValueError(f"loss_on must be one of {LOSS_ON}, got {loss_on!r}")

  def loss_fn(params, batch, rng):
    logits = adapter(params, batch, rng)
    return cross_entropy(logits, batch["decoder_target_tokens"],
                         loss_weights(batch, loss_on, pad_id), z_loss)

  return loss_fn
