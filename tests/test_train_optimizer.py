"""Schedules, the weight-decay mask and clipping of underrep_jax.train.optimizer."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tolerances import float32_tol  # tests/tolerances.py
from underrep_jax import config_schema
from underrep_jax.train import optimizer

# A schedule value is a few float32 scalar ops (no reduction): float32_tol(1) = 1.2e-6
# relative, far below the steps between the values checked (>= 5% of the peak).
SCALAR_RTOL = float32_tol(1)


def _lrs(schedule, steps):
  return np.array([float(schedule(s)) for s in steps])


def test_constant_with_warmup():
  s = optimizer.make_schedule("constant", 1.0, 100, warmup_steps=4)
  # Exact on purpose: step / warmup with warmup 4 is a dyadic fraction, exact in float32.
  np.testing.assert_allclose(_lrs(s, [0, 1, 2, 4, 50, 100]), [0, 0.25, 0.5, 1, 1, 1])


def test_linear_decays_to_final_ratio():
  s = optimizer.make_schedule("linear", 2.0, 10, warmup_steps=0, final_lr_ratio=0.1)
  np.testing.assert_allclose(_lrs(s, [0, 5, 10, 20]), [2.0, 1.1, 0.2, 0.2], rtol=SCALAR_RTOL)


def test_linear_no_warmup_is_the_paper_recipe():
  s = optimizer.make_schedule("linear", 1e-5, 50_000)
  np.testing.assert_allclose(_lrs(s, [0, 25_000, 50_000]), [1e-5, 5e-6, 0.0], rtol=0,
                             atol=float32_tol(1, scale=1e-5))  # a few ulp of the peak


def test_cosine_after_warmup():
  s = optimizer.make_schedule("cosine", 1.0, 12, warmup_steps=2)
  lrs = _lrs(s, [0, 1, 2, 7, 12])
  # XLA's cos is a polynomial of a few ulp; atol, since 0.0 has no relative scale.
  np.testing.assert_allclose(lrs, [0, 0.5, 1.0, 0.5, 0.0], rtol=0, atol=SCALAR_RTOL)


def test_inverse_sqrt_is_continuous_after_warmup():
  s = optimizer.make_schedule("inverse_sqrt", 1.0, 1000, warmup_steps=100)
  np.testing.assert_allclose(_lrs(s, [50, 100, 400]), [0.5, 1.0, 0.5], rtol=SCALAR_RTOL)
  s0 = optimizer.make_schedule("inverse_sqrt", 1.0, 1000)
  np.testing.assert_allclose(_lrs(s0, [0, 1, 4]), [1.0, 1.0, 0.5], rtol=SCALAR_RTOL)


def test_unknown_schedule_is_an_error():
  with pytest.raises(ValueError, match="unknown schedule"):
    optimizer.make_schedule("step", 1.0, 10)


def test_decay_mask_skips_vectors_and_named_params():
  params = {"embed": {"tokens": jnp.ones((4, 2))},
            "block": {"dense": {"kernel": jnp.ones((2, 3)), "bias": jnp.ones((3,))},
                      "final_norm": {"scale": jnp.ones((2, 2))}}}
  mask = optimizer.decay_mask(params)
  assert mask == {"embed": {"tokens": True},
                  "block": {"dense": {"kernel": True, "bias": False},
                            "final_norm": {"scale": False}}}
  assert optimizer.decay_mask(params, ("embed",))["embed"]["tokens"] is False


def _config(**overrides):
  cfg = config_schema.optimizer(learning_rate=0.1, schedule="constant", weight_decay=0.5,
                                b2=0.99, clip_norm=0.0)
  cfg.update(overrides)
  return cfg


def test_weight_decay_only_where_masked():
  tx, _ = optimizer.make_optimizer(_config(), 10)
  params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones((2,))}
  zero_grads = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zero_grads, tx.init(params), params)
  np.testing.assert_allclose(updates["kernel"], -0.1 * 0.5 * np.ones((2, 2)), rtol=SCALAR_RTOL)
  np.testing.assert_allclose(updates["bias"], np.zeros(2))  # exact: no decay, zero gradient


def test_clipping_bounds_the_global_norm():
  # With b1 = b2 = 0 and a huge eps, Adam's update is about -lr * g / eps: linear in
  # the (clipped) gradient, so the clipping shows through.
  cfg = _config(clip_norm=1.0, weight_decay=0.0, b1=0.0, b2=0.0, eps=1e3)
  tx, _ = optimizer.make_optimizer(cfg, 10)
  params = {"a": jnp.zeros((4,))}
  updates, _ = tx.update({"a": jnp.full((4,), 10.0)}, tx.init(params), params)
  # The global norm sums 4 squares, then Adam divides: float32_tol(4, depth=2) = 4.8e-6
  # relative; unclipped, the update would be 20x larger.
  np.testing.assert_allclose(updates["a"], -0.1 * 0.5 / (0.5 + 1e3) * np.ones(4),
                             rtol=float32_tol(4, depth=2))
  assert float(optax.tree.norm(updates)) < 1e-4


def test_only_adamw():
  with pytest.raises(ValueError, match="only 'adamw'"):
    optimizer.make_optimizer(_config(name="sgd"), 10)
