"""The attention implementations a config can choose (`model.attention`).

"xla" against a NumPy softmax reference; the Pallas splash kernel (TPU) in interpret mode
on this CPU against "xla", forward and gradients, through the whole Llama model; "cudnn"
refused in one line where there is no NVIDIA GPU; the families and masks the kernel cannot
take refused in one line. The kernel's compile for a TPU slice is `plan`'s (README).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from underrep_jax import config_schema
from underrep_jax import errors
from underrep_jax import plan
from underrep_jax.models import layers
from underrep_jax.models import llama
from underrep_jax.models import registry
from underrep_jax.models import runtime

import test_plan
from tolerances import float32_tol


def _reference(q, k, v, mask, bias, scale):
  """softmax(q k^T * scale + bias, masked) v in float64, grouped KV heads repeated."""
  q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
  groups = q.shape[2] // k.shape[2]
  k, v = np.repeat(k, groups, axis=2), np.repeat(v, groups, axis=2)
  logits = np.einsum("btnh,bsnh->bnts", q, k) * scale + np.asarray(bias, np.float64)
  logits = np.where(np.asarray(mask), logits, -np.inf)
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  return np.einsum("bnts,bsnh->btnh", weights, v)


def _inputs(kv_heads: int, b: int = 2, t: int = 16, n: int = 4, h: int = 8):
  rng = np.random.default_rng(0)
  q, k, v = (rng.normal(size=(b, t, heads, h)).astype(np.float32)
             for heads in (n, kv_heads, kv_heads))
  valid = np.ones((b, t), bool)
  valid[1, 11:] = False
  mask = layers.combine_masks(layers.padding_mask(None, jnp.asarray(valid)),
                              jnp.tril(jnp.ones((t, t), bool)))
  bias = rng.normal(size=(b, n, t, t)).astype(np.float32)
  return q, k, v, mask, jnp.asarray(bias)


# "cpu": head-major operands; "tpu": the projections' [B, T, K, G, H] layout (any platform
# but the CPU), both computed here on the CPU.
@pytest.mark.parametrize("platform", ["cpu", "tpu"])
@pytest.mark.parametrize("kv_heads", [4, 2])
def test_xla_attention_matches_a_softmax_reference(platform, kv_heads, monkeypatch):
  monkeypatch.setattr(layers, "compute_platform", lambda: platform)
  q, k, v, mask, bias = _inputs(kv_heads)
  b, t, n, h = q.shape
  out = layers.attention(q, k, v, mask=mask, bias=bias, scale=0.3, implementation="xla")
  expected = _reference(q, k, v, np.broadcast_to(mask, (b, 1, t, t)), bias, 0.3)
  np.testing.assert_allclose(np.asarray(out), expected, rtol=0,
                             atol=float32_tol(t * h, depth=2, scale=float(np.abs(expected).max())))


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_both_attention_layouts_have_the_same_gradients(kv_heads, monkeypatch):
  q, k, v, mask, bias = _inputs(kv_heads)
  t, h = q.shape[1], q.shape[3]

  def grads(platform):
    monkeypatch.setattr(layers, "compute_platform", lambda: platform)
    loss = lambda q, k, v: jnp.sum(jnp.sin(layers.attention(  # noqa: E731
        q, k, v, mask=mask, bias=bias, scale=0.3, implementation="xla")))
    return jax.grad(loss, argnums=(0, 1, 2))(q, k, v)

  for ours, theirs in zip(grads("cpu"), grads("tpu")):
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=0,
                               atol=float32_tol(t * h, depth=4,
                                                scale=float(np.abs(theirs).max())))


@test_plan.needs_libtpu
def test_a_tpu_mesh_in_context_is_the_compute_platform():
  """What `plan` relies on: a step traced on this CPU host for a TPU slice takes the
  accelerator's attention layout."""
  plan.choose_platforms(plan.target_named("v5e-8"))
  mesh = jax.sharding.Mesh(np.array(plan.target_devices(plan.target_named("v5e-8"))), ("x",))
  assert layers.compute_platform() == jax.default_backend() == "cpu"
  with jax.set_mesh(mesh):
    assert layers.compute_platform() == "tpu"


def _model(attention: str) -> llama.Llama:
  cfg = llama.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_layers=2,
                          num_heads=4, num_kv_heads=2, head_dim=8)
  return registry.build("llama", cfg, attention=attention)


@pytest.fixture
def interpret_kernels(monkeypatch):
  monkeypatch.setattr(layers, "INTERPRET_KERNELS", True)


def test_splash_kernel_matches_xla_in_the_llama_model(interpret_kernels, monkeypatch):
  """Forward logits and parameter gradients at the real tokens of a batch with a packed
  row (two segments) and a padded row (segment 0), at a length the kernel's 128-token
  tiles do not divide (padded inside)."""
  del interpret_kernels
  t = 100
  rng = np.random.default_rng(1)
  ids = jnp.asarray(rng.integers(1, 64, size=(2, t)), jnp.int32)
  valid = np.ones((2, t), np.int32)
  valid[1, 90:] = 0
  segments = np.stack([np.where(np.arange(t) < 50, 1, 2), valid[1]])
  positions = np.stack([np.where(np.arange(t) < 50, np.arange(t), np.arange(t) - 50),
                        np.arange(t)])
  kwargs = dict(segment_ids=jnp.asarray(segments, jnp.int32), attention_mask=jnp.asarray(valid),
                positions=jnp.asarray(positions, jnp.int32))
  xla, splash = _model("xla"), _model("splash")
  params = xla.init(jax.random.PRNGKey(0), ids)["params"]
  weights = jnp.asarray(valid, jnp.float32)[..., None]
  calls = []
  kernel = layers.splash_attention
  monkeypatch.setattr(layers, "splash_attention", lambda *a: calls.append(1) or kernel(*a))

  def loss(module, p):
    logits = module.apply({"params": p}, ids, **kwargs)
    return jnp.sum(jax.nn.log_softmax(logits) * weights) / 100.0, logits

  (loss_x, logits_x), grads_x = jax.value_and_grad(lambda p: loss(xla, p), has_aux=True)(params)
  (loss_s, logits_s), grads_s = jax.value_and_grad(lambda p: loss(splash, p), has_aux=True)(params)
  assert len(calls) == 2  # the kernel ran in both layers; the XLA model never called it
  real = valid.astype(bool)
  scale = float(np.abs(np.asarray(logits_x)).max())
  np.testing.assert_allclose(np.asarray(logits_s)[real], np.asarray(logits_x)[real], rtol=0,
                             atol=float32_tol(t * 32, depth=2, scale=scale))
  np.testing.assert_allclose(float(loss_s), float(loss_x), rtol=float32_tol(t * 64, depth=2))
  for (path, gx), gs in zip(jax.tree_util.tree_leaves_with_path(grads_x),
                            jax.tree_util.tree_leaves(grads_s)):
    gx, gs = np.asarray(gx), np.asarray(gs)
    np.testing.assert_allclose(gs, gx, rtol=0, err_msg=jax.tree_util.keystr(path),
                               atol=float32_tol(2 * t * 32, depth=4,
                                                scale=float(np.abs(gx).max()) + 1e-12))


def test_splash_decoding_keeps_xla_attention(interpret_kernels):
  """A KV-cache decode (generation) with the kernel chosen gives the XLA logits."""
  del interpret_kernels
  ids = jnp.asarray(np.random.default_rng(2).integers(1, 64, size=(1, 8)), jnp.int32)
  xla, splash = _model("xla"), _model("splash")
  params = xla.init(jax.random.PRNGKey(0), ids)["params"]
  outs = []
  for module in (xla, splash):
    cache = module.init(jax.random.PRNGKey(0), ids, decode=True)["cache"]
    logits, _ = module.apply({"params": params, "cache": cache}, ids, decode=True,
                             mutable=["cache"])
    outs.append(np.asarray(logits))
  np.testing.assert_array_equal(outs[1], outs[0])


def test_the_config_carries_attention_to_the_module():
  section = config_schema.model(family="llama", attention="splash",
                                scratch=dict(hidden_size=32, num_layers=1, num_heads=4,
                                             num_kv_heads=4, head_dim=8))
  module = runtime.ModelSource.from_config(section).module(vocab_size=64)
  assert module.config.attention == "splash"
  assert config_schema.model().attention == "xla"


def test_kernels_refuse_families_with_an_attention_bias_in_one_line():
  with pytest.raises(errors.ConfigError, match=r"model.attention='splash'.*bloom.*'xla'"):
    registry.build("bloom", {"vocab_size": 64, "hidden_size": 32, "num_layers": 1,
                             "num_heads": 4}, attention="splash")
  with pytest.raises(errors.ConfigError, match="known are"):
    registry.build("llama", {"vocab_size": 64}, attention="flash3")


def test_kernels_refuse_a_sliding_window_in_one_line():
  cfg = llama.LlamaConfig(vocab_size=64, hidden_size=32, num_layers=1, num_heads=4,
                          num_kv_heads=4, head_dim=8, sliding_window=16)
  module = registry.build("llama", cfg, attention="splash")
  with pytest.raises(errors.ConfigError, match="causal attention only.*sliding window"):
    module.init(jax.random.PRNGKey(0), jnp.ones((1, 128), jnp.int32))


def test_cudnn_without_an_nvidia_gpu_is_one_line():
  """Chosen on a host without cuDNN, the first trace says so (no silent fallback: a
  benchmark must not time XLA's attention under the name cuDNN)."""
  module = registry.build("llama", {"vocab_size": 64}, dtype="bfloat16", attention="cudnn")
  ids = jnp.ones((1, 16), jnp.int32)
  if jax.default_backend() == "gpu":
    pytest.skip("an NVIDIA GPU is present")
  with pytest.raises(errors.ConfigError, match=r"model.attention='cudnn' needs an NVIDIA GPU"):
    module.init(jax.random.PRNGKey(0), ids)
  float32 = registry.build("llama", {"vocab_size": 64}, attention="cudnn")
  with pytest.raises(errors.ConfigError, match="bfloat16 or float16"):
    float32.init(jax.random.PRNGKey(0), ids)
