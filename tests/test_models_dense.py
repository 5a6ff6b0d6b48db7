"""`Dense`'s CPU matmul with the transposed kernel gradient against autodiff's, and the
whole layer's gradients on both platforms' paths."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tolerances import float32_tol  # tests/tolerances.py
from underrep_jax.models import layers


def _inputs(tokens=(3, 40), d_in=24, d_out=16):
  rng = np.random.default_rng(0)
  x = rng.standard_normal((*tokens, d_in)).astype(np.float32)
  kernel = rng.standard_normal((d_in, d_out)).astype(np.float32)
  cotangent = rng.standard_normal((*tokens, d_out)).astype(np.float32)
  return x, kernel, cotangent


def test_values_and_gradients_are_autodiffs():
  x, kernel, cotangent = _inputs()
  ours, ours_vjp = jax.vjp(layers.matmul_weight_gradient_transposed, x, kernel)
  theirs, theirs_vjp = jax.vjp(lambda x, k: x @ k, x, kernel)
  # The same contraction (24 terms), compiled apart: equal up to its rounding.
  np.testing.assert_allclose(ours, theirs, rtol=0,
                             atol=float32_tol(24, scale=float(np.abs(theirs).max())))
  # dx contracts the 16 outputs, the kernel's gradient the 120 tokens.
  for got, want, n in zip(ours_vjp(cotangent), theirs_vjp(cotangent), (16, 120)):
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0,
                               atol=float32_tol(n, scale=float(np.abs(want).max())))


@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_gradients_match_on_the_cpu_and_accelerator_paths(use_bias, monkeypatch):
  x, _, cotangent = _inputs()
  dense = layers.Dense((16,), ("embed", "mlp"), use_bias=use_bias)
  params = dense.init(jax.random.PRNGKey(0), x)

  def grads(platform):
    monkeypatch.setattr(layers, "compute_platform", lambda: platform)
    loss = lambda p, x: jnp.sum(dense.apply(p, x) * cotangent)  # noqa: E731
    return jax.grad(loss, argnums=(0, 1))(params, x)

  for got, want in zip(jax.tree.leaves(grads("cpu")), jax.tree.leaves(grads("tpu"))):
    np.testing.assert_allclose(got, want, rtol=0,
                               atol=float32_tol(120, scale=float(np.abs(want).max())))
