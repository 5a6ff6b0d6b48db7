"""Building blocks shared by every model family.

Parameters carry logical axis names ('embed', 'mlp', 'heads', 'kv_heads', 'kv', 'vocab',
'norm', 'relpos_buckets'); the rules that map them onto a mesh live in parallel.py and the
configs, never here. Activations are constrained with the same names; without rules in
context (`nn.logical_axis_rules`) the constraints are no-ops.

Attention works in the [batch, length, heads, head_dim] layout that
`jax.nn.dot_product_attention` takes, so no transposes are needed around it. Its
implementation is the model config's `attention` (`model.attention`): "xla" (every
backend), "cudnn" (cuDNN flash attention through `jax.nn.dot_product_attention`, NVIDIA
GPUs) or "splash" (the Pallas splash-attention kernel on TPUs: causal, no bias; the
decoder's layout then hands the attention a `SegmentMask` instead of a [B, 1, T, S] mask).
"""

from collections.abc import Sequence
import functools
import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from underrep_jax import errors

DType = Any
Array = jax.Array

# Activation layouts.
BLE = ("batch", "length", "embed")
BLM = ("batch", "length", "mlp")
BLHK = ("batch", "length", "heads", "kv")
BLV = ("batch", "length", "vocab")


def constrain(x: Array, axes: Sequence[str | None]) -> Array:
  return nn.with_logical_constraint(x, tuple(axes))


def normal_init(stddev: float):
  return nn.initializers.normal(stddev=stddev)


@jax.custom_vjp
def exact_gelu(x: Array) -> Array:
  """x Φ(x), computed as jax.nn.gelu(approximate=False) does (x erfc(-x / √2) / 2).

  The backward pass keeps x alone and recomputes Φ(x) + x φ(x) in one loop: the autodiff
  of jax.nn.gelu keeps three [tokens, mlp] intermediates of erfc's expansion, and XLA's
  CPU code runs it as three loops over them (MiniLM's train step: 30 ms of 2.3 s).
  """
  return _gelu_forward(x)[0]


def _gelu_forward(x):
  return jax.nn.gelu(x, approximate=False), x


def _gelu_backward(x, grad):
  # erfc, not 1 + erf: XLA's CPU erf is 2.5x slower, and erfc keeps Φ's small tail exact.
  cdf = 0.5 * jax.lax.erfc(x * np.asarray(-np.sqrt(0.5), x.dtype))
  pdf = jnp.exp(-0.5 * x * x) * np.asarray(1.0 / np.sqrt(2.0 * np.pi), x.dtype)
  return (grad * (cdf + x * pdf),)


exact_gelu.defvjp(_gelu_forward, _gelu_backward)


ACTIVATIONS = {
    "gelu": exact_gelu,
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_fast": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}


def activation(name: str):
  if name not in ACTIVATIONS:
    raise ValueError(f"unsupported activation {name!r}; known: {sorted(ACTIVATIONS)}")
  return ACTIVATIONS[name]


@jax.custom_vjp
def matmul_weight_gradient_transposed(x: Array, kernel: Array) -> Array:
  """x @ kernel ([..., in] x [in, out]), whose kernel gradient is computed as
  (g^T x)^T, [out, in] transposed, instead of autodiff's x^T g.

  Same values; what changes is which operand XLA's CPU code transposes for the
  token-contracting matmul: the layer's input (an activation, already in memory) instead
  of the output's gradient. On the residual stream that gradient is a chain of adds over
  every layer above, which XLA's CPU fusion inlines into the transposing copy and sums
  again at each layer (README, "Benchmarks"). `benchmarks/train_step.py` (BLOOM 40M):
  ratio to PyTorch 0.83-0.85 -> 0.98-1.01. Used on CPUs only (`Dense`), where that
  fusion happens.
  """
  return x @ kernel


def _matmul_forward(x, kernel):
  return x @ kernel, (x, kernel)


def _matmul_backward(residuals, grad):
  x, kernel = residuals
  tokens_x, tokens_grad = x.reshape(-1, x.shape[-1]), grad.reshape(-1, grad.shape[-1])
  kernel_grad = jax.lax.dot_general(tokens_grad, tokens_x, (((0,), (0,)), ((), ())))
  return grad @ kernel.T, kernel_grad.T


matmul_weight_gradient_transposed.defvjp(_matmul_forward, _matmul_backward)


class Dense(nn.Module):
  """A linear map contracting the last `in_dims` input axes into `features`.

  The kernel has shape input.shape[-in_dims:] + features, so attention projections keep
  separate heads/head_dim axes (each with its own logical name) and HF [out, in] weights
  map to it by a transpose and a reshape.
  """
  features: tuple[int, ...]
  axes: tuple[str | None, ...]
  in_dims: int = 1
  use_bias: bool = True
  dtype: DType = jnp.float32
  param_dtype: DType = jnp.float32
  kernel_init: Any = normal_init(0.02)

  @nn.compact
  def __call__(self, x: Array) -> Array:
    in_shape = x.shape[-self.in_dims:]
    kernel = self.param("kernel", nn.with_logical_partitioning(self.kernel_init, self.axes),
                        tuple(in_shape) + tuple(self.features), self.param_dtype)
    x_axes = tuple(range(x.ndim - self.in_dims, x.ndim))
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    if self.in_dims == 1 and len(self.features) == 1 and compute_platform() == "cpu":
      y = matmul_weight_gradient_transposed(x, kernel)
    else:
      y = jax.lax.dot_general(x, kernel, ((x_axes, tuple(range(self.in_dims))), ((), ())))
    if self.use_bias:
      bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros,
                                                             self.axes[self.in_dims:]),
                        tuple(self.features), self.param_dtype)
      y = y + bias.astype(self.dtype)
    return y


class Norm(nn.Module):
  """LayerNorm (mean and variance, optional bias) or RMSNorm (`rms=True`), in float32."""
  epsilon: float = 1e-5
  rms: bool = False
  use_bias: bool = True
  dtype: DType = jnp.float32
  param_dtype: DType = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    features = x.shape[-1]
    h = x.astype(jnp.float32)
    if not self.rms:
      h = h - jnp.mean(h, axis=-1, keepdims=True)
    h = h * jax.lax.rsqrt(jnp.mean(jnp.square(h), axis=-1, keepdims=True) + self.epsilon)
    scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, ("norm",)),
                       (features,), self.param_dtype)
    h = h.astype(self.dtype) * scale.astype(self.dtype)
    if self.use_bias and not self.rms:
      bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros, ("norm",)),
                        (features,), self.param_dtype)
      h = h + bias.astype(self.dtype)
    return h


class Embed(nn.Module):
  """A lookup table; `attend` gives logits against it (tied output embeddings)."""
  num_embeddings: int
  features: int
  axes: tuple[str | None, str | None] = ("vocab", "embed")
  dtype: DType = jnp.float32
  param_dtype: DType = jnp.float32
  embedding_init: Any = normal_init(0.02)

  def setup(self):
    self.embedding = self.param(
        "embedding", nn.with_logical_partitioning(self.embedding_init, self.axes),
        (self.num_embeddings, self.features), self.param_dtype)

  def __call__(self, ids: Array) -> Array:
    return jnp.take(self.embedding, ids, axis=0).astype(self.dtype)

  def attend(self, x: Array) -> Array:
    return jnp.einsum("...d,vd->...v", x.astype(self.dtype), self.embedding.astype(self.dtype))


# ---------------------------------------------------------------------------------------
# Positions: rotary, ALiBi, sinusoidal, T5 relative buckets.


def rope_inverse_frequencies(head_dim: int, theta: float,
                             scaling: dict[str, Any] | None = None) -> np.ndarray:
  """RoPE inverse frequencies, with 'linear' or 'llama3' (Llama 3.1) scaling."""
  inv_freq = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
  scaling = dict(scaling or {})
  rope_type = scaling.get("rope_type", scaling.get("type", "default"))
  if rope_type == "default":
    return inv_freq.astype(np.float32)
  if rope_type == "linear":
    return (inv_freq / scaling["factor"]).astype(np.float32)
  if rope_type == "llama3":
    factor = scaling["factor"]
    low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
    old_len = scaling["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv_freq
    scaled = np.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
    return np.where(medium, smoothed, scaled).astype(np.float32)
  raise ValueError(f"unsupported rope scaling {scaling!r}; supported: default, linear, llama3")


def apply_rotary(x: Array, positions: Array, inv_freq: np.ndarray) -> Array:
  """Rotates [B, T, N, H] by `positions` [B, T] (half-split layout, as in HF Llama)."""
  angles = positions[..., None].astype(jnp.float32) * jnp.asarray(inv_freq)  # [B, T, H/2]
  cos = jnp.cos(angles)[:, :, None, :]
  sin = jnp.sin(angles)[:, :, None, :]
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x.dtype)


def alibi_slopes(num_heads: int) -> np.ndarray:
  """ALiBi head slopes (Press et al.), including the non-power-of-two interleave."""
  closest = 2 ** math.floor(math.log2(num_heads))
  base = 2.0 ** (-(2.0 ** -(math.log2(closest) - 3)))
  slopes = [base ** p for p in range(1, closest + 1)]
  if closest != num_heads:
    extra_base = 2.0 ** (-(2.0 ** -(math.log2(2 * closest) - 3)))
    extra = min(closest, num_heads - closest)
    slopes += [extra_base ** p for p in range(1, 1 + 2 * extra, 2)]
  return np.asarray(slopes, np.float32)


def alibi_bias(num_heads: int, key_positions: Array) -> Array:
  """[B, N, 1, S] bias slope * key_position; softmax makes it relative to the query."""
  slopes = jnp.asarray(alibi_slopes(num_heads))
  return slopes[None, :, None, None] * key_positions[:, None, None, :].astype(jnp.float32)


def sinusoidal_embedding(positions: Array, features: int) -> Array:
  """tensor2tensor sinusoids [sin | cos] at `positions` (fairseq / XGLM layout)."""
  half = features // 2
  scale = math.log(10000) / (half - 1)
  freqs = jnp.exp(jnp.arange(half, dtype=jnp.float32) * -scale)
  angles = positions[..., None].astype(jnp.float32) * freqs
  emb = jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)
  if features % 2:
    emb = jnp.pad(emb, [(0, 0)] * (emb.ndim - 1) + [(0, 1)])
  return emb


def relative_position_bucket(relative_position: Array, bidirectional: bool, num_buckets: int,
                             max_distance: int) -> Array:
  """T5 buckets of memory_position - query_position: exact when small, log-spaced after."""
  buckets = jnp.zeros_like(relative_position)
  if bidirectional:
    num_buckets //= 2
    buckets = buckets + (relative_position > 0).astype(jnp.int32) * num_buckets
    distance = jnp.abs(relative_position)
  else:
    distance = -jnp.minimum(relative_position, 0)
  max_exact = num_buckets // 2
  is_small = distance < max_exact
  log_ratio = jnp.log(jnp.maximum(distance, 1).astype(jnp.float32) / max_exact)
  large = max_exact + (log_ratio / math.log(max_distance / max_exact)
                       * (num_buckets - max_exact)).astype(jnp.int32)
  large = jnp.minimum(large, num_buckets - 1)
  return buckets + jnp.where(is_small, distance, large)


class RelativePositionBias(nn.Module):
  """T5 learned per-head bias over relative-position buckets -> [B, N, T, S]."""
  num_buckets: int
  max_distance: int
  num_heads: int
  bidirectional: bool
  param_dtype: DType = jnp.float32
  embedding_init: Any = normal_init(0.02)

  @nn.compact
  def __call__(self, query_positions: Array, key_positions: Array) -> Array:
    """Positions are [B, T] and [B, S] (or [1, ...] to share over the batch)."""
    table = self.param("embedding", nn.with_logical_partitioning(
        self.embedding_init, ("relpos_buckets", "heads")),
                       (self.num_buckets, self.num_heads), self.param_dtype)
    relative = key_positions[:, None, :] - query_positions[:, :, None]
    buckets = relative_position_bucket(relative, self.bidirectional, self.num_buckets,
                                       self.max_distance)
    bias = jnp.take(table, buckets, axis=0).astype(jnp.float32)  # [B, T, S, N]
    return jnp.transpose(bias, (0, 3, 1, 2))


# ---------------------------------------------------------------------------------------
# Masks and the decode-mode (KV cache) bookkeeping.


def default_positions(attention_mask: Array | None, shape: tuple[int, int]) -> Array:
  """Positions that skip padding: 0, 1, ... from the first real token of each row."""
  if attention_mask is None:
    return jnp.broadcast_to(jnp.arange(shape[1], dtype=jnp.int32), shape)
  return jnp.maximum(jnp.cumsum(attention_mask.astype(jnp.int32), axis=-1) - 1, 0)


def padding_mask(query_valid: Array | None, key_valid: Array | None) -> Array | None:
  """[B, 1, T, S] from [B, T] / [B, S] validity (either may be None)."""
  if key_valid is None:
    return None
  mask = key_valid.astype(bool)[:, None, None, :]
  if query_valid is not None:
    mask = mask & query_valid.astype(bool)[:, None, :, None]
  return mask


def combine_masks(*masks: Array | None) -> Array | None:
  present = [m for m in masks if m is not None]
  if not present:
    return None
  out = present[0]
  for m in present[1:]:
    out = out & m
  return out


class SelfAttentionLayout(nn.Module):
  """Positions and the [B, 1, T, S] self-attention mask of one forward pass.

  Training/scoring: causal (or bidirectional) by index, keys limited by `attention_mask`,
  tokens attend within their segment (packing), and with `causal_attention` (prefix LM,
  T5X convention) prefix tokens see each other both ways.

  Decode mode keeps, in the 'cache' collection, the cache write index, which cache slots
  hold real tokens, their positions and each row's next position, so a prompt followed by
  single tokens reproduces the full-sequence computation. Packed segments are not
  supported while decoding.
  """
  causal: bool = True
  decode: bool = False
  sliding_window: int | None = None
  kernel: bool = False  # a causal `SegmentMask` for the Pallas kernels (not when decoding)

  @nn.compact
  def __call__(self, shape: tuple[int, int], attention_mask: Array | None = None,
               segment_ids: Array | None = None, positions: Array | None = None,
               causal_attention: Array | None = None):
    """Returns (query_positions [B,T], key_positions [B,S], mask, cache_index or None)."""
    batch, length = shape
    if not self.decode and self.kernel:
      if positions is None:
        positions = default_positions(attention_mask, shape)
      return positions, positions, kernel_mask(self.causal, self.sliding_window, attention_mask,
                                               segment_ids, causal_attention), None
    if not self.decode:
      if positions is None:
        positions = default_positions(attention_mask, shape)
      index = jnp.arange(length)
      mask = padding_mask(None, attention_mask)
      if segment_ids is not None:
        mask = combine_masks(mask, (segment_ids[:, None, :, None] == segment_ids[:, None, None, :]))
      if self.causal:
        causal = index[:, None] >= index[None, :]
        if causal_attention is not None:
          prefix = causal_attention.astype(bool)
          causal = causal[None, None] | (prefix[:, None, :, None] & prefix[:, None, None, :])
        mask = combine_masks(mask, causal)
        if self.sliding_window is not None:
          mask = combine_masks(mask, index[:, None] - index[None, :] < self.sliding_window)
      return positions, positions, mask, None

    if segment_ids is not None or causal_attention is not None:
      raise ValueError("decode mode supports neither packed segments nor a prefix-LM mask")
    chunk_valid = (jnp.ones(shape, bool) if attention_mask is None
                   else attention_mask.astype(bool))
    initializing = not self.has_variable("cache", "cache_index")
    cache_index = self.variable("cache", "cache_index", lambda: jnp.zeros((), jnp.int32))
    key_valid = self.variable("cache", "key_valid", jnp.zeros, shape, bool)
    key_positions = self.variable("cache", "key_positions", jnp.zeros, shape, jnp.int32)
    next_position = self.variable("cache", "next_position", jnp.zeros, (batch,), jnp.int32)
    if positions is None:
      positions = jnp.maximum(
          next_position.value[:, None] + jnp.cumsum(chunk_valid.astype(jnp.int32), axis=-1) - 1, 0)
    if initializing:
      start = jnp.zeros((), jnp.int32)
    else:
      start = cache_index.value
      key_valid.value = jax.lax.dynamic_update_slice(key_valid.value, chunk_valid, (0, start))
      key_positions.value = jax.lax.dynamic_update_slice(
          key_positions.value, positions.astype(jnp.int32), (0, start))
      next_position.value = next_position.value + jnp.sum(chunk_valid, axis=-1, dtype=jnp.int32)
      cache_index.value = start + length
    cache_length = key_valid.value.shape[1]
    query_index = start + jnp.arange(length)
    key_index = jnp.arange(cache_length)
    keys_valid = chunk_valid if initializing else key_valid.value
    mask = padding_mask(None, keys_valid)
    if self.causal:
      mask = combine_masks(mask, query_index[:, None] >= key_index[None, :])
      if self.sliding_window is not None:
        mask = combine_masks(mask, query_index[:, None] - key_index[None, :] < self.sliding_window)
    key_pos = positions if initializing else key_positions.value
    return positions, key_pos, mask, start


class SegmentMask(NamedTuple):
  """The causal mask of a Pallas kernel: tokens attend to earlier tokens of their segment.

  `segment_ids` [B, T] (None: one segment): the packing segments, 0 for padding, or the
  attention mask (1 real, 0 padding). A real token then sees exactly the keys the
  [B, 1, T, S] mask of the same inputs gives it; a padding query sees earlier padding
  (its output is ignored either way).
  """
  segment_ids: Array | None


def kernel_mask(causal: bool, sliding_window: int | None, attention_mask: Array | None,
                segment_ids: Array | None, causal_attention: Array | None) -> SegmentMask:
  """The `SegmentMask` of a forward pass, or one line saying why a kernel cannot take it."""
  if not causal or sliding_window is not None or causal_attention is not None:
    what = ("bidirectional attention" if not causal else
            "a sliding window" if sliding_window is not None else "a prefix-LM mask")
    raise errors.ConfigError(f"model.attention: the Pallas kernels take causal attention "
                             f"only, this model asks for {what}; use 'xla' or 'cudnn'")
  segments = segment_ids
  if attention_mask is not None:
    valid = attention_mask.astype(jnp.int32)
    segments = valid if segments is None else segments.astype(jnp.int32) * valid
  return SegmentMask(None if segments is None else segments.astype(jnp.int32))


def update_kv_cache(module: nn.Module, key: Array, value: Array, cache_index: Array):
  """Writes this step's [B, T, K, H] keys/values at `cache_index`; returns the whole cache.

  The cache length is fixed by the length of the input at `init(..., decode=True)` time.
  """
  initializing = not module.has_variable("cache", "cached_key")
  cached_key = module.variable("cache", "cached_key", jnp.zeros, key.shape, key.dtype)
  cached_value = module.variable("cache", "cached_value", jnp.zeros, value.shape, value.dtype)
  if initializing:
    return key, value
  zero = jnp.zeros((), jnp.int32)
  start = (zero, cache_index.astype(jnp.int32), zero, zero)
  cached_key.value = jax.lax.dynamic_update_slice(cached_key.value, key.astype(cached_key.value.dtype), start)
  cached_value.value = jax.lax.dynamic_update_slice(cached_value.value, value.astype(cached_value.value.dtype), start)
  return cached_key.value, cached_value.value


ATTENTION_IMPLEMENTATIONS = ("xla", "cudnn", "splash")
KERNEL_ATTENTION = ("splash",)  # Pallas kernels: the layout gives them a `SegmentMask`

# Run the Pallas kernels in interpret mode (any backend, slow): for parity tests on CPU.
# Off, a kernel lowers for TPUs only.
INTERPRET_KERNELS = False


def attention(query: Array, key: Array, value: Array, mask: Array | SegmentMask | None = None,
              bias: Array | None = None, scale: float | None = None,
              implementation: str = "xla") -> Array:
  """Softmax attention over [B, T, N, H] / [B, S, K, H] (K divides N: grouped queries).

  Logits and softmax are float32 (every implementation); a fully masked
  row (a padding query) gives a finite, ignored output. `implementation`: "xla", "cudnn"
  (`jax.nn.dot_product_attention` on cuDNN's fused kernel: NVIDIA GPUs, bf16/fp16) or "splash"
  (`splash_attention`, given a `SegmentMask`; decoding with a KV cache gets a boolean
  mask and stays on XLA).
  """
  if implementation not in ATTENTION_IMPLEMENTATIONS:
    raise errors.ConfigError(f"model.attention={implementation!r}: known are "
                             f"{list(ATTENTION_IMPLEMENTATIONS)}")
  if isinstance(mask, SegmentMask):
    if bias is not None:
      raise errors.ConfigError(f"model.attention={implementation!r} takes no attention bias")
    return splash_attention(query, key, value, mask.segment_ids, scale)
  if bias is not None:
    bias = bias.astype(jnp.float32) if query.dtype == jnp.float32 else bias.astype(query.dtype)
  if mask is not None:
    mask = jnp.broadcast_to(mask, (query.shape[0], 1, query.shape[1], key.shape[1]))
  if implementation != "cudnn":
    return xla_attention(query, key, value, bias=bias, mask=mask, scale=scale)
  if query.dtype not in (jnp.bfloat16, jnp.float16):
    raise errors.ConfigError(f"model.attention='cudnn' computes in bfloat16 or float16, "
                             f"not {query.dtype}: set model.dtype=bfloat16, or use 'xla'")
  try:
    return jax.nn.dot_product_attention(query, key, value, bias=bias, mask=mask, scale=scale,
                                        implementation="cudnn")
  except RuntimeError as e:  # "cuDNN is not detected": no NVIDIA GPU here
    raise errors.ConfigError(f"model.attention='cudnn' needs an NVIDIA GPU with cuDNN; jax "
                             f"says {str(e).strip().rstrip('.')!r} (backend "
                             f"{jax.default_backend()}); use 'xla'") from None


def compute_platform() -> str:
  """The platform a traced computation is compiled for: that of the mesh in context (a
  step `plan` compiles for a TPU slice is traced on a CPU host), else the default
  backend's."""
  mesh = jax.sharding.get_abstract_mesh()
  if not mesh.empty and mesh.abstract_device is not None:
    return mesh.abstract_device.platform
  return jax.default_backend()


def xla_attention(query: Array, key: Array, value: Array, bias: Array | None = None,
                  mask: Array | None = None, scale: float | None = None) -> Array:
  """`jax.nn.dot_product_attention`'s XLA computation (float32 logits and softmax, grouped
  KV heads without repeating them, a fully masked row uniform), except for what the
  backward pass keeps: the probabilities in the values' dtype (`_probabilities`), not the
  float32 softmax jax.nn.softmax saves, so a bf16 model keeps half the bytes of its
  largest per-layer activation, [B, N, T, S]. Float32 models compute exactly as before.
  """
  batch, length, heads, head_dim = query.shape
  kv_heads = key.shape[2]
  groups = heads // kv_heads
  scale = head_dim ** -0.5 if scale is None else scale
  precision = (jax.lax.DotAlgorithmPreset.BF16_BF16_F32 if query.dtype == jnp.bfloat16
               else None)
  head_major = compute_platform() == "cpu"
  if head_major:
    # Head-major operands ([B, N, T, H]; grouped: [B, K, G, T, H] against [B, K, S, H]):
    # batch dimensions leading and the minor one contracted, the layout XLA's CPU kernels
    # run fastest, and without grouped KV heads no unit group axis (it slows them again).
    # benchmarks/attention_parts.py times it against PyTorch.
    key, value = (jnp.transpose(x, (0, 2, 1, 3)) for x in (key, value))
  if head_major and groups == 1:
    query = jnp.transpose(query, (0, 2, 1, 3))
    scores, weighted = "bnth,bnsh->bnts", "bnts,bnsh->bnth"
  elif head_major:
    query = jnp.transpose(query.reshape(batch, length, kv_heads, groups, head_dim),
                          (0, 2, 3, 1, 4))
    scores, weighted = "bkgth,bksh->bkgts", "bkgts,bksh->bkgth"
  else:
    # Elsewhere contracted in the [B, T, K, G, H] layout the projections give, with a group
    # axis even of size 1: the TPU compiler schedules that backward pass in less memory
    # (the 60M Llama on v5e-8, 4 rows per chip: peak 0.91 GiB, against 1.01 GiB for the
    # head-major form; README, "Memory per chip").
    query = query.reshape(batch, length, kv_heads, groups, head_dim)
    scores, weighted = "btkgh,bskh->bkgts", "bkgts,bskh->btkgh"

  def by_group(x):  # [B, N or 1, T, S] -> [B, K or 1, G or 1, T, S] (the scores' axes)
    if head_major and groups == 1:
      return x
    if x.shape[1] == 1:
      return x[:, :, None]
    return x.reshape(x.shape[0], kv_heads, groups, *x.shape[2:])

  logits = jnp.einsum(scores, query, key, precision=precision,
                      preferred_element_type=jnp.float32)
  logits = logits * jnp.float32(scale)
  if bias is not None:
    logits = logits + by_group(bias).astype(jnp.float32)
  if mask is not None:
    logits = jnp.where(by_group(mask), logits, jnp.float32(-0.7 * np.finfo(np.float32).max))
  probs = _probabilities(logits, jnp.dtype(value.dtype))
  out = jnp.einsum(weighted, probs, value)
  if head_major:
    return jnp.transpose(out.reshape(batch, heads, length, -1), (0, 2, 1, 3))
  return out.reshape(batch, length, heads, -1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _probabilities(logits: Array, dtype) -> Array:
  """softmax(float32 logits) in `dtype`; the backward pass keeps only that result."""
  return jax.nn.softmax(logits, axis=-1).astype(dtype)


def _probabilities_fwd(logits, dtype):
  probs = _probabilities(logits, dtype)
  return probs, probs


def _probabilities_bwd(dtype, probs, grad):
  del dtype
  p, g = probs.astype(jnp.float32), grad.astype(jnp.float32)
  return (p * (g - jnp.sum(p * g, axis=-1, keepdims=True)),)


_probabilities.defvjp(_probabilities_fwd, _probabilities_bwd)


def _kernel_block(length: int) -> int:
  """The splash kernel's tile along the (padded) sequence: the largest of 512, 256, 128
  dividing it."""
  return next(block for block in (512, 256, 128) if length % block == 0)


def splash_attention(query: Array, key: Array, value: Array, segment_ids: Array | None,
                     scale: float | None = None) -> Array:
  """Causal attention by the Pallas splash kernel (jax.experimental.pallas.ops.tpu), as
  MaxText wires it: [B, T, N, H] in and out, the kernel's [N, T, H] per batch row under
  `jax.vmap`, and under a mesh one `shard_map` over the batch and head axes (the kernel
  is a custom call GSPMD cannot split). Its softmax statistics are float32; its backward
  recomputes the probabilities block by block instead of keeping [B, N, T, S].
  """
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as sm
  if query.shape[1] != key.shape[1]:
    raise errors.ConfigError("model.attention='splash' is self-attention: query and key "
                             f"lengths differ ({query.shape[1]} vs {key.shape[1]})")
  batch, given, head_dim = query.shape[0], query.shape[1], query.shape[-1]
  scale = head_dim ** -0.5 if scale is None else scale
  # The kernel tiles by 128: a shorter or ragged sequence is padded at the end with keys
  # of a segment of their own, which causality already hides from every real query.
  length = -(-given // 128) * 128
  block = _kernel_block(length)
  segments = (jnp.ones((batch, given), jnp.int32) if segment_ids is None
              else segment_ids.astype(jnp.int32))
  pad = ((0, 0), (0, length - given), (0, 0), (0, 0))
  query = jnp.pad(query * jnp.asarray(scale, query.dtype), pad).swapaxes(1, 2)  # [B, N, T, H]
  key, value = jnp.pad(key, pad).swapaxes(1, 2), jnp.pad(value, pad).swapaxes(1, 2)
  segments = jnp.pad(segments, ((0, 0), (0, length - given)), constant_values=-1)
  interpret = INTERPRET_KERNELS

  def kernel_call(q, k, v, seg):  # one shard: the mask and tiles of its own heads
    mask = sm.MultiHeadMask([sm.CausalMask((length, length))] * q.shape[1])
    sizes = sk.BlockSizes(block_q=block, block_kv=block, block_kv_compute=block,
                          block_q_dkv=block, block_kv_dkv=block, block_kv_dkv_compute=block,
                          block_q_dq=block, block_kv_dq=block)
    kernel = sk.make_splash_mha(mask, block_sizes=sizes, head_shards=1, q_seq_shards=1,
                                interpret=interpret)
    return jax.vmap(lambda q1, k1, v1, s1: kernel(q1, k1, v1, segment_ids=sk.SegmentIds(s1, s1))
                    )(q, k, v, seg)

  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty:
    out = kernel_call(query, key, value, segments)
  else:
    kv_axis = "heads" if key.shape[1] == query.shape[1] else "kv_heads"
    q_spec = nn.logical_to_mesh_axes(("batch", "heads", None, None))
    kv_spec = nn.logical_to_mesh_axes(("batch", kv_axis, None, None))
    seg_spec = nn.logical_to_mesh_axes(("batch", None))
    out = jax.shard_map(kernel_call, mesh=mesh, in_specs=(q_spec, kv_spec, kv_spec, seg_spec),
                        out_specs=q_spec, check_vma=False)(query, key, value, segments)
  return out.swapaxes(1, 2)[:, :given]


class MultiHeadAttention(nn.Module):
  """Self- or cross-attention with q/k/v (separate or fused) and out projections.

  Covers Llama (RoPE, grouped KV heads, optional q/k/v biases), XGLM and BERT (biases,
  no rotary), T5 (no biases, no scaling, additive position bias) and BLOOM (`fused_qkv`:
  one `qkv` kernel [embed, heads, 3, head_dim], the layout of HF's query_key_value, whose
  rows are ordered (head, q|k|v, head_dim)). In decode mode the keys and values of
  self-attention go through the KV cache.
  """
  num_heads: int
  head_dim: int
  num_kv_heads: int | None = None
  qkv_bias: bool = False
  out_bias: bool = False
  scale: float | None = None          # None: 1/sqrt(head_dim)
  rope_theta: float | None = None     # None: no rotary embedding
  rope_scaling: tuple[tuple[str, Any], ...] | None = None
  fused_qkv: bool = False             # self-attention only, no grouped KV heads
  decode: bool = False
  implementation: str = "xla"         # `attention`'s: xla | cudnn | splash
  dtype: DType = jnp.float32
  param_dtype: DType = jnp.float32
  kernel_init: Any = normal_init(0.02)

  @nn.compact
  def __call__(self, x: Array, mask: Array | None = None, bias: Array | None = None,
               positions: Array | None = None, cache_index: Array | None = None, kv_input: Array | None = None) -> Array:
    kv_heads = self.num_kv_heads or self.num_heads
    kv_axis = "heads" if kv_heads == self.num_heads else "kv_heads"

    def project(name, inputs, heads, head_axis):
      return Dense((heads, self.head_dim), ("embed", head_axis, "kv"), use_bias=self.qkv_bias,
                   dtype=self.dtype, param_dtype=self.param_dtype,
                   kernel_init=self.kernel_init, name=name)(inputs)

    if self.fused_qkv:
      if kv_input is not None or kv_heads != self.num_heads:
        raise ValueError("fused_qkv needs self-attention with num_kv_heads == num_heads")
      qkv = Dense((self.num_heads, 3, self.head_dim), ("embed", "heads", None, "kv"),
                  use_bias=self.qkv_bias, dtype=self.dtype, param_dtype=self.param_dtype,
                  kernel_init=self.kernel_init, name="qkv")(x)
      query, key, value = qkv[:, :, :, 0], qkv[:, :, :, 1], qkv[:, :, :, 2]
    else:
      source = x if kv_input is None else kv_input
      query = project("query", x, self.num_heads, "heads")
      key = project("key", source, kv_heads, kv_axis)
      value = project("value", source, kv_heads, kv_axis)
    if self.rope_theta is not None:  # self-attention only: new keys sit at the query positions
      inv_freq = rope_inverse_frequencies(self.head_dim, self.rope_theta,
                                          dict(self.rope_scaling or ()))
      query = apply_rotary(query, positions, inv_freq)
      key = apply_rotary(key, positions, inv_freq)
    query = constrain(query, BLHK)
    if self.decode and kv_input is None:
      key, value = update_kv_cache(self, key, value, cache_index)
    out = attention(query, key, value, mask=mask, bias=bias, scale=self.scale,
                    implementation=self.implementation)
    out = Dense((x.shape[-1],), ("heads", "kv", "embed"), in_dims=2, use_bias=self.out_bias,
                dtype=self.dtype, param_dtype=self.param_dtype, kernel_init=self.kernel_init,
                name="out")(out)
    return constrain(out, BLE)
