"""InfoNCE: equals a NumPy reference, and the sharded loss equals the single-device one."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from tolerances import float32_tol  # tests/tolerances.py
from underrep_jax import parallel
from underrep_jax.univar import loss as univar_loss


def _reference(anchors, positives, scale, symmetric, identities=None):
  """Cross-entropy of each anchor against all positives, written with explicit loops;
  with `identities`, other rows of the anchor's identity are left out of its softmax."""
  a = anchors / np.linalg.norm(anchors, axis=1, keepdims=True)
  p = positives / np.linalg.norm(positives, axis=1, keepdims=True)
  logits = scale * a.astype(np.float64) @ p.astype(np.float64).T

  def one_way(logits):
    losses = []
    for i, row in enumerate(logits):
      keep = [j for j in range(len(row))
              if j == i or identities is None or identities[j] != identities[i]]
      row = row[keep]
      shifted = row - row.max()
      losses.append(-(shifted[keep.index(i)] - np.log(np.exp(shifted).sum())))
    return np.mean(losses)

  forward = one_way(logits)
  return 0.5 * (forward + one_way(logits.T)) if symmetric else forward


def _loss_atol(scale, batch=16, dim=12):
  """Float32 error of the loss, absolute: it is lse(row) - matched, two ~scale-sized numbers.

  Each logit is scale * (a dim-term dot of two normalised rows), off by ~EPS * scale per
  rounding; the log-sum-exp over the batch-long row adds its own. Worst case at scale 50,
  dim 12: (2 * dim + 4) roundings * 50 * EPS = 1.7e-4; this gives 5.1e-4 at scale 50 and
  3.6e-5 at scale 1, far below the 0.026 that skipping the anchors' normalisation changes.
  """
  return float32_tol(max(batch, dim), depth=2, scale=scale + np.log(batch))


def _pairs(batch=16, dim=12, seed=0):
  rng = np.random.default_rng(seed)
  anchors = rng.normal(size=(batch, dim)).astype(np.float32)
  positives = (anchors + 0.7 * rng.normal(size=(batch, dim))).astype(np.float32)
  return anchors, positives


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("scale", [50.0, 1.0])
def test_matches_numpy_reference(symmetric, scale):
  anchors, positives = _pairs()
  got = univar_loss.info_nce(jnp.asarray(anchors), jnp.asarray(positives), scale, symmetric)
  np.testing.assert_allclose(float(got), _reference(anchors, positives, scale, symmetric),
                             rtol=0, atol=_loss_atol(scale))


@pytest.mark.parametrize("symmetric", [False, True])
def test_same_identity_rows_are_not_negatives(symmetric):
  anchors, positives = _pairs()
  identities = np.array([0, 1, 2, 0, 3, 4, 1, 5, 6, 7, 0, 8, 9, 10, 11, 12], np.int32)
  # Views of one identity look alike: rows 3 and 10 near row 0, row 6 near row 1.
  rng = np.random.default_rng(1)
  for copy, source in ((3, 0), (10, 0), (6, 1)):
    anchors[copy] = anchors[source] + 0.3 * rng.normal(size=12)
    positives[copy] = positives[source] + 0.3 * rng.normal(size=12)
  masked = univar_loss.info_nce(anchors, positives, 50.0, symmetric, identities=identities)
  np.testing.assert_allclose(float(masked),
                             _reference(anchors, positives, 50.0, symmetric, identities),
                             rtol=0, atol=_loss_atol(50.0))
  # The mask matters here (the original's loss differs) and is a no-op on distinct rows.
  assert abs(float(masked) - _reference(anchors, positives, 50.0, symmetric)) > 1e-3
  distinct = univar_loss.info_nce(anchors, positives, 50.0, symmetric,
                                  identities=np.arange(16, dtype=np.int32))
  np.testing.assert_allclose(float(distinct), _reference(anchors, positives, 50.0, symmetric),
                             rtol=0, atol=_loss_atol(50.0))
  # An anchor whose nearest other positive is its own identity's still counts as right.
  same = np.array([0, 0], np.int32)
  close = np.array([[1.0, 0.0], [0.9, 0.1]], np.float32)
  assert float(univar_loss.pair_accuracy(close, close[::-1])) == 0.0
  assert float(univar_loss.pair_accuracy(close, close[::-1], same)) == 1.0


def test_one_directional_is_not_symmetric():
  anchors, positives = _pairs()
  forward = univar_loss.info_nce(anchors, positives)
  backward = univar_loss.info_nce(positives, anchors)
  assert abs(float(forward) - float(backward)) > 1e-3
  both = univar_loss.info_nce(anchors, positives, symmetric=True)
  # Separate programs round the 50-scaled logits differently; the effect checked is ~0.15.
  np.testing.assert_allclose(float(both), 0.5 * (float(forward) + float(backward)), rtol=0,
                             atol=_loss_atol(univar_loss.DEFAULT_LOGIT_SCALE))


def test_scale_invariance_and_accuracy():
  anchors, positives = _pairs()
  # The loss (0.034) is a difference of ~50-sized logits: its rounding is absolute, not
  # relative (1.4e-5 relative on AVX-512). Without normalisation 3x anchors move it 0.026.
  np.testing.assert_allclose(float(univar_loss.info_nce(3.0 * anchors, positives)),
                             float(univar_loss.info_nce(anchors, positives)), rtol=0,
                             atol=_loss_atol(univar_loss.DEFAULT_LOGIT_SCALE))
  assert float(univar_loss.pair_accuracy(anchors, anchors)) == 1.0


@pytest.mark.parametrize("mesh_shape, symmetric, axis_type", [
    ((2, 4, 1), True, AxisType.Explicit),  # jax.make_mesh's default axis type
    ((8, 1, 1), False, AxisType.Auto),  # what the train loop uses
])
def test_sharded_equals_single_device(mesh_shape, symmetric, axis_type):
  anchors, positives = _pairs(batch=32)
  identities = (np.arange(32) % 27).astype(np.int32)  # rows 27..31 repeat rows 0..4's
  loss_fn = functools.partial(univar_loss.info_nce, symmetric=symmetric)
  single_loss, single_grads = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1)))(
      anchors, positives, identities=identities)

  mesh = parallel.make_mesh(mesh_shape)  # Explicit axes, jax.make_mesh's default
  mesh = Mesh(mesh.devices, mesh.axis_names, axis_types=(axis_type,) * 3)
  sharding = parallel.batch_sharding(mesh)  # batch over ('data', 'fsdp')
  a = jax.device_put(anchors, sharding)
  p = jax.device_put(positives, sharding)
  ids = jax.device_put(identities, parallel.batch_sharding(mesh, ndim=1))
  assert len(a.addressable_shards) == 8 and a.addressable_shards[0].data.shape == (4, 12)
  replicated = NamedSharding(mesh, PartitionSpec())
  step = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1)),
                 out_shardings=(replicated, (sharding, sharding)))
  sharded_loss, sharded_grads = step(a, p, identities=ids)
  accuracy = jax.jit(univar_loss.pair_accuracy)(a, p, ids)
  # A count of rows over 32 (exact); its pairs are far from ties (noise 0.7 of the signal).
  np.testing.assert_allclose(float(accuracy), float(univar_loss.pair_accuracy(
      anchors, positives, identities)))
  # The partitioned program rounds in another order. Negatives kept on their own shard
  # (the bug this catches) move the loss by 0.17 and gradients by up to 0.69.
  np.testing.assert_allclose(float(sharded_loss), float(single_loss), rtol=0,
                             atol=_loss_atol(univar_loss.DEFAULT_LOGIT_SCALE, batch=32))
  # Gradient terms are scale / batch ~ 1.6 in size, summed over the 32 rows.
  grad_atol = float32_tol(32, depth=2, scale=univar_loss.DEFAULT_LOGIT_SCALE / 32)
  for got, want in zip(sharded_grads, single_grads):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=grad_atol)


def test_pair_accuracy_matches_argmax_when_embeddings_nearly_collapse():
  # Views of weak-signal data end up at cosine ~0.99; the metric must read the own pair
  # off the same similarity matrix as the competitors, or rounding decides it.
  rng = np.random.default_rng(3)
  common = rng.normal(size=(1, 384))
  anchors = (common + 0.02 * rng.normal(size=(64, 384))).astype(np.float32)
  positives = (anchors + 0.01 * rng.normal(size=(64, 384))).astype(np.float32)
  positives[::2] = common + 0.02 * rng.normal(size=(32, 384))  # these rows lose their pair
  a = anchors / np.linalg.norm(anchors, axis=1, keepdims=True)
  p = positives / np.linalg.norm(positives, axis=1, keepdims=True)
  sims = a.astype(np.float64) @ p.T.astype(np.float64)
  own = np.diag(sims)
  best_other = np.max(np.where(np.eye(64, dtype=bool), -np.inf, sims), axis=1)
  # A row whose margin is below the float32 error of a 384-term dot product of unit
  # vectors can go either way in any float32 program (and differently on AVX2 and
  # AVX-512); every other row is decided, and the metric must count those exactly.
  undecided = np.abs(own - best_other) <= float32_tol(384)
  won = np.sum((own > best_other) & ~undecided) / 64
  assert 0.2 < won and np.sum(undecided) <= 10
  for got in (univar_loss.pair_accuracy(anchors, positives),
              jax.jit(univar_loss.pair_accuracy)(anchors, positives)):
    assert won <= float(got) <= won + np.sum(undecided) / 64
