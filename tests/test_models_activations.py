"""The exact GELU's own backward pass against autodiff and against PyTorch."""

import jax
import jax.numpy as jnp
import numpy as np
import torch

from tolerances import float32_tol  # tests/tolerances.py
from underrep_jax.models import layers

# No reduction: each element is a few float32 operations (erfc, exp, products), so the
# tolerance is that of a handful of roundings (reduction_size 1, depth 4).
TOL = float32_tol(1, depth=4)


def _inputs():
  rng = np.random.default_rng(0)
  x = np.concatenate([rng.standard_normal(4000) * 3, np.linspace(-12, 12, 97)])
  return x.astype(np.float32), rng.standard_normal(x.size).astype(np.float32)


def test_values_are_jax_gelu_exactly():
  x, _ = _inputs()
  np.testing.assert_array_equal(jax.jit(layers.exact_gelu)(x),
                                jax.jit(lambda v: jax.nn.gelu(v, approximate=False))(x))


def test_gradient_matches_autodiff_and_torch():
  x, upstream = _inputs()
  ours = jax.grad(lambda v: jnp.sum(layers.exact_gelu(v) * upstream))(x)
  autodiff = jax.grad(lambda v: jnp.sum(jax.nn.gelu(v, approximate=False) * upstream))(x)
  scale = np.abs(upstream) * 1.2  # |dGELU/dx| <= 1.13
  assert np.all(np.abs(np.asarray(ours) - np.asarray(autodiff)) <= TOL * scale + 1e-30)
  xt = torch.from_numpy(x.copy()).requires_grad_(True)
  (torch.nn.functional.gelu(xt) * torch.from_numpy(upstream)).sum().backward()
  assert np.all(np.abs(np.asarray(ours) - xt.grad.numpy()) <= TOL * scale + 1e-30)


def test_bfloat16_stays_bfloat16():
  x = jnp.linspace(-4, 4, 33, dtype=jnp.bfloat16)
  grad = jax.grad(lambda v: jnp.sum(layers.exact_gelu(v).astype(jnp.float32)))(x)
  assert layers.exact_gelu(x).dtype == jnp.bfloat16 and grad.dtype == jnp.bfloat16
  reference = jax.grad(lambda v: jnp.sum(jax.nn.gelu(v.astype(jnp.float32), approximate=False)))(
      x.astype(jnp.float32))
  bf16_eps = float(jnp.finfo(jnp.bfloat16).eps)
  np.testing.assert_allclose(np.asarray(grad, np.float32), reference, atol=4 * bf16_eps * 1.2)
