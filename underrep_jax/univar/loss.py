"""InfoNCE over the global batch, the UniVaR training objective.

Row i of `anchors` and of `positives` embed two views of one identity; every other row
of `positives` is a negative for anchor i. Embeddings are L2-normalised and the cosine
similarities multiplied by a fixed logit scale (50, i.e. temperature 0.02, as in the
paper). The original loss is one-directional (anchors against positives);
`symmetric=True` averages it with the positives-against-anchors direction.

The original samples identities in proportion to their QA counts, so one identity can
fill several rows of a batch, and its other views then count as negatives of its own
anchor (false negatives). Given `identities` (one id per row), those pairs leave the
softmax: the loss is then the original's wherever a batch holds distinct identities.

Negatives span all devices by writing the loss in plain jnp over the global [B, D]
arrays, called under `jax.jit` with the batch sharded over the mesh's data axes. With
Auto mesh axes (what the train loop uses) the SPMD partitioner inserts the all-gather
for the [B, B] similarity matrix itself. With Explicit axes (`jax.make_mesh`'s default
in jax 0.10), where sharding is part of the array type, the loss reshards the positives
to replicated (the same all-gather, written out) and keeps the anchors' rows sharded.
B is small (64 in the paper), so gathering the [B, D] positives is cheap. No mesh axis
names appear in the loss, so one function runs on one CPU, 8 simulated devices or a pod
under any sharding rules; a shard_map + all_gather version would hard-code the axes and
compute the same numbers.
"""

import jax
import jax.numpy as jnp
from jax.sharding import AxisType, NamedSharding, PartitionSpec

DEFAULT_LOGIT_SCALE = 50.0
_EPS = 1e-12


def l2_normalize(x: jax.Array, axis: int = -1) -> jax.Array:
  """x / max(||x||, eps): a zero vector stays zero instead of becoming NaN."""
  norm = jnp.linalg.norm(x, axis=axis, keepdims=True)
  return x / jnp.maximum(norm, _EPS)


def _replicated(x: jax.Array) -> jax.Array:
  """`x` gathered onto every device when its sharding is Explicit (a no-op otherwise)."""
  sharding = jax.typeof(x).sharding
  mesh = getattr(sharding, "mesh", None)
  spec = getattr(sharding, "spec", None)
  if mesh is None or not spec or all(axes is None for axes in spec):
    return x
  if not any(t == AxisType.Explicit for t in mesh.axis_types):
    return x
  return jax.sharding.reshard(x, NamedSharding(mesh, PartitionSpec()))


def _normalized(anchors: jax.Array, positives: jax.Array) -> tuple[jax.Array, jax.Array]:
  if anchors.shape != positives.shape or anchors.ndim != 2:
    raise ValueError(f"expected two [batch, dim] arrays of one shape, got {anchors.shape} "
                     f"and {positives.shape}")
  return (l2_normalize(anchors.astype(jnp.float32)),
          l2_normalize(positives.astype(jnp.float32)))


def _all_pairs(a: jax.Array, p: jax.Array, logit_scale: float) -> jax.Array:
  return logit_scale * jnp.einsum("id,jd->ij", a, _replicated(p),
                                  precision=jax.lax.Precision.HIGHEST)


def _false_negatives(identities: jax.Array | None, size: int) -> jax.Array | None:
  """[B, B] True where row and column are different pairs of one identity."""
  if identities is None:
    return None
  if identities.shape != (size,):
    raise ValueError(f"expected identities of shape ({size},), got {identities.shape}")
  own = jnp.arange(size)[:, None] == jnp.arange(size)[None, :]
  return (identities[:, None] == _replicated(identities)[None, :]) & ~own


def info_nce(anchors: jax.Array, positives: jax.Array,
             logit_scale: float = DEFAULT_LOGIT_SCALE, symmetric: bool = False,
             identities: jax.Array | None = None) -> jax.Array:
  """Mean InfoNCE loss (a scalar) of a [B, D] batch of positive pairs, computed in float32.

  `identities` ([B] ints): other rows of the same identity are not negatives (see the
  module doc). The matched logits are computed row by row rather than read off the
  diagonal, which would be a gather across shards.
  """
  a, p = _normalized(anchors, positives)
  logits = _all_pairs(a, p, logit_scale)
  false_negatives = _false_negatives(identities, logits.shape[0])
  if false_negatives is not None:
    logits = jnp.where(false_negatives, -jnp.inf, logits)
  matched = logit_scale * jnp.sum(a * p, axis=1)
  loss = jnp.mean(jax.nn.logsumexp(logits, axis=1) - matched)
  if symmetric:
    loss = 0.5 * (loss + jnp.mean(jax.nn.logsumexp(logits, axis=0) - matched))
  return loss


def pair_accuracy(anchors: jax.Array, positives: jax.Array,
                  identities: jax.Array | None = None) -> jax.Array:
  """Fraction of anchors whose most similar positive is their own pair (a training
  metric); with `identities`, other views of the same identity do not compete."""
  a, p = _normalized(anchors, positives)
  logits = _all_pairs(a, p, 1.0)
  size = logits.shape[0]
  own = jnp.arange(size)[:, None] == jnp.arange(size)[None, :]
  false_negatives = _false_negatives(identities, size)
  if false_negatives is not None:
    logits = jnp.where(false_negatives, -jnp.inf, logits)
  # The own pair is read off the same matrix (a masked sum, no gather across shards):
  # recomputing it as a row-wise dot product rounds differently, and when the views are
  # nearly collapsed (cosines ~0.99) that rounding alone decided many rows.
  matched = jnp.sum(jnp.where(own, logits, 0.0), axis=1)
  best_other = jnp.max(jnp.where(own, -jnp.inf, logits), axis=1)
  return jnp.mean(matched > best_other)
