"""InfoNCE: equals a NumPy reference, and the sharded loss equals the single-device one."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from underrep_jax import parallel
from underrep_jax.univar import loss as univar_loss


def _reference(anchors, positives, scale, symmetric):
  """Cross-entropy of each anchor against all positives, written with explicit loops."""
  a = anchors / np.linalg.norm(anchors, axis=1, keepdims=True)
  p = positives / np.linalg.norm(positives, axis=1, keepdims=True)
  logits = scale * a.astype(np.float64) @ p.astype(np.float64).T

  def one_way(logits):
    losses = []
    for i, row in enumerate(logits):
      shifted = row - row.max()
      losses.append(-(shifted[i] - np.log(np.exp(shifted).sum())))
    return np.mean(losses)

  forward = one_way(logits)
  return 0.5 * (forward + one_way(logits.T)) if symmetric else forward


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
                             rtol=1e-5, atol=1e-5)


def test_one_directional_is_not_symmetric():
  anchors, positives = _pairs()
  forward = univar_loss.info_nce(anchors, positives)
  backward = univar_loss.info_nce(positives, anchors)
  assert abs(float(forward) - float(backward)) > 1e-3
  both = univar_loss.info_nce(anchors, positives, symmetric=True)
  np.testing.assert_allclose(float(both), 0.5 * (float(forward) + float(backward)), rtol=1e-6)


def test_scale_invariance_and_accuracy():
  anchors, positives = _pairs()
  np.testing.assert_allclose(float(univar_loss.info_nce(3.0 * anchors, positives)),
                             float(univar_loss.info_nce(anchors, positives)), rtol=1e-5)
  assert float(univar_loss.pair_accuracy(anchors, anchors)) == 1.0


@pytest.mark.parametrize("mesh_shape, symmetric, axis_type", [
    ((2, 4, 1), True, AxisType.Explicit),  # jax.make_mesh's default axis type
    ((8, 1, 1), False, AxisType.Auto),  # what the train loop uses
])
def test_sharded_equals_single_device(mesh_shape, symmetric, axis_type):
  anchors, positives = _pairs(batch=32)
  loss_fn = functools.partial(univar_loss.info_nce, symmetric=symmetric)
  single_loss, single_grads = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1)))(
      anchors, positives)

  mesh = parallel.make_mesh(mesh_shape)  # Explicit axes, jax.make_mesh's default
  mesh = Mesh(mesh.devices, mesh.axis_names, axis_types=(axis_type,) * 3)
  sharding = parallel.batch_sharding(mesh)  # batch over ('data', 'fsdp')
  a = jax.device_put(anchors, sharding)
  p = jax.device_put(positives, sharding)
  assert len(a.addressable_shards) == 8 and a.addressable_shards[0].data.shape == (4, 12)
  replicated = NamedSharding(mesh, PartitionSpec())
  step = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1)),
                 out_shardings=(replicated, (sharding, sharding)))
  sharded_loss, sharded_grads = step(a, p)
  accuracy = jax.jit(univar_loss.pair_accuracy)(a, p)
  np.testing.assert_allclose(float(accuracy), float(univar_loss.pair_accuracy(anchors, positives)))
  np.testing.assert_allclose(float(sharded_loss), float(single_loss), rtol=1e-6)
  for got, want in zip(sharded_grads, single_grads):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-7)


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
  expected = np.mean(np.argmax(a.astype(np.float64) @ p.T.astype(np.float64), axis=1)
                     == np.arange(64))
  assert 0.2 < expected < 0.9
  assert float(univar_loss.pair_accuracy(anchors, positives)) == pytest.approx(expected)
  assert float(jax.jit(univar_loss.pair_accuracy)(anchors, positives)) == pytest.approx(expected)
