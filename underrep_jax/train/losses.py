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


@jax.custom_vjp
def token_nll(logits: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(-log softmax(logits)[target], log Z) per token, [B, T] each, in float32.

  The arithmetic is float32 whatever the logits' dtype, but what the backward pass keeps
  is the logits as they came (bf16 logits: half the bytes of a float32 copy of
  [B, T, V], the largest activation of a small-model step) and log Z; the gradient
  softmax - onehot is recomputed from them, fused, in the logits' dtype.
  """
  return _token_nll(logits, targets)


def _token_nll(logits, targets):
  log_z = jax.nn.logsumexp(logits.astype(jnp.float32), axis=-1)
  # Picked before the (exact) cast: a float32 [B, T, V] copy is never needed.
  target_logits = jnp.take_along_axis(logits, targets[..., None].astype(jnp.int32),
                                      axis=-1)[..., 0].astype(jnp.float32)
  return log_z - target_logits, log_z


def _token_nll_fwd(logits, targets):
  nll, log_z = _token_nll(logits, targets)
  return (nll, log_z), (logits, targets, log_z)


def _token_nll_bwd(residuals, cotangents):
  logits, targets, log_z = residuals
  d_nll, d_log_z = cotangents  # d nll / d logits = softmax - onehot; d log Z = softmax
  probs = jnp.exp(logits.astype(jnp.float32) - log_z[..., None])
  onehot = jax.nn.one_hot(targets, logits.shape[-1], dtype=jnp.float32)
  d_logits = probs * (d_nll + d_log_z)[..., None] - onehot * d_nll[..., None]
  return d_logits.astype(logits.dtype), None


token_nll.defvjp(_token_nll_fwd, _token_nll_bwd)


def cross_entropy(logits: jax.Array, targets: jax.Array, weights: jax.Array,
                  z_loss: float = 0.0) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
  """Weighted token cross-entropy in float32: (loss_sum, weight, metric sums).

  `z_loss` adds z_loss * log(Z)^2 per token (PaLM/T5X), which keeps the softmax
  normaliser near 1 in low precision; it is included in loss_sum and reported separately.
  The backward pass keeps the logits in their own dtype (`token_nll`).
  """
  weights = weights.astype(jnp.float32)
  targets = targets.astype(jnp.int32)
  nll, log_z = token_nll(logits, targets)
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
