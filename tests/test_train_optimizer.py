"""Schedules, the weight-decay mask and clipping of underrep_jax.train.optimizer."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from underrep_jax.train import optimizer


def _lrs(schedule, steps):
  return np.array([float(schedule(s)) for s in steps])


def test_constant_with_warmup():
  s = optimizer.make_schedule("constant", 1.0, 100, warmup_steps=4)
  np.testing.assert_allclose(_lrs(s, [0, 1, 2, 4, 50, 100]), [0, 0.25, 0.5, 1, 1, 1])


def test_linear_decays_to_final_ratio():
  s = optimizer.make_schedule("linear", 2.0, 10, warmup_steps=0, final_lr_ratio=0.1)
  np.testing.assert_allclose(_lrs(s, [0, 5, 10, 20]), [2.0, 1.1, 0.2, 0.2], rtol=1e-6)


def test_linear_no_warmup_is_the_paper_recipe():
  s = optimizer.make_schedule("linear", 1e-5, 50_000)
  np.testing.assert_allclose(_lrs(s, [0, 25_000, 50_000]), [1e-5, 5e-6, 0.0], atol=1e-12)


def test_cosine_after_warmup():
  s = optimizer.make_schedule("cosine", 1.0, 12, warmup_steps=2)
  lrs = _lrs(s, [0, 1, 2, 7, 12])
  np.testing.assert_allclose(lrs, [0, 0.5, 1.0, 0.5, 0.0], atol=1e-6)


def test_inverse_sqrt_is_continuous_after_warmup():
  s = optimizer.make_schedule("inverse_sqrt", 1.0, 1000, warmup_steps=100)
  np.testing.assert_allclose(_lrs(s, [50, 100, 400]), [0.5, 1.0, 0.5], rtol=1e-6)
  s0 = optimizer.make_schedule("inverse_sqrt", 1.0, 1000)
  np.testing.assert_allclose(_lrs(s0, [0, 1, 4]), [1.0, 1.0, 0.5], rtol=1e-6)


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
  cfg = ml_collections.ConfigDict(dict(
      name="adamw", learning_rate=0.1, schedule="constant", warmup_steps=0, weight_decay=0.5,
      b1=0.9, b2=0.99, eps=1e-8, clip_norm=None))
  cfg.update(overrides)
  return cfg


def test_weight_decay_only_where_masked():
  tx, _ = optimizer.make_optimizer(_config(), 10)
  params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones((2,))}
  zero_grads = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zero_grads, tx.init(params), params)
  np.testing.assert_allclose(updates["kernel"], -0.1 * 0.5 * np.ones((2, 2)), rtol=1e-6)
  np.testing.assert_allclose(updates["bias"], np.zeros(2))


def test_clipping_bounds_the_global_norm():
  # With b1 = b2 = 0 and a huge eps, Adam's update is about -lr * g / eps: linear in
  # the (clipped) gradient, so the clipping shows through.
  cfg = _config(clip_norm=1.0, weight_decay=0.0, b1=0.0, b2=0.0, eps=1e3)
  tx, _ = optimizer.make_optimizer(cfg, 10)
  params = {"a": jnp.zeros((4,))}
  updates, _ = tx.update({"a": jnp.full((4,), 10.0)}, tx.init(params), params)
  np.testing.assert_allclose(updates["a"], -0.1 * 0.5 / (0.5 + 1e3) * np.ones(4), rtol=1e-5)
  assert float(optax.tree.norm(updates)) < 1e-4


def test_only_adamw():
  with pytest.raises(ValueError, match="only 'adamw'"):
    optimizer.make_optimizer(_config(name="sgd"), 10)
