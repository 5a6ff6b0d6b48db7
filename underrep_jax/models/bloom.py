"""BLOOM / BLOOMZ: ALiBi attention, embedding LayerNorm, GELU MLP, tied embeddings.

The base model of InstructAlign. Parameter layout (per layer `layers_{i}`):
  attention/qkv/kernel [embed, heads, 3, head_dim]: HF's fused query_key_value, whose rows
    are ordered (head, q|k|v, head_dim), so import is one transpose and a reshape.
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from underrep_jax.models import layers

Array = jax.Array

# config.json keys transformers' BloomConfig folds into another (published BLOOMZ configs
# use n_embed); with its attribute_map these are one setting each.
HF_ALIASES = {"n_embed": "hidden_size"}


@dataclasses.dataclass(frozen=True)
class BloomConfig:
  vocab_size: int = 250880
  hidden_size: int = 64
  num_layers: int = 2
  num_heads: int = 8
  layer_norm_epsilon: float = 1e-5
  hidden_dropout: float = 0.0
  initializer_range: float = 0.02
  remat: bool = False

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads

  @classmethod
  def from_hf(cls, hf) -> "BloomConfig":
    """From a transformers BloomConfig (aliases resolved)."""
    if hf.apply_residual_connection_post_layernorm:
      raise ValueError("BLOOM with apply_residual_connection_post_layernorm=True is not supported")
    if not hf.tie_word_embeddings:
      raise ValueError("BLOOM with tie_word_embeddings=False is not supported")
    return cls(vocab_size=hf.vocab_size, hidden_size=hf.hidden_size, num_layers=hf.n_layer,
               num_heads=hf.n_head, layer_norm_epsilon=hf.layer_norm_epsilon,
               hidden_dropout=float(hf.hidden_dropout), initializer_range=hf.initializer_range)

  def to_hf(self) -> dict[str, Any]:
    return {"model_type": "bloom", "architectures": ["BloomForCausalLM"],
            "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
            "n_layer": self.num_layers, "n_head": self.num_heads,
            "layer_norm_epsilon": self.layer_norm_epsilon, "hidden_dropout": self.hidden_dropout,
            "initializer_range": self.initializer_range, "tie_word_embeddings": True,
            "apply_residual_connection_post_layernorm": False}

  def param_table(self) -> list[tuple[str, str, str]]:
    """(HF name, our param path, transform); see hf.py for the transforms."""
    table = [("transformer.word_embeddings.weight", "embed/embedding", "same"),
             ("transformer.word_embeddings_layernorm.weight", "embed_norm/scale", "same"),
             ("transformer.word_embeddings_layernorm.bias", "embed_norm/bias", "same"),
             ("transformer.ln_f.weight", "final_norm/scale", "same"),
             ("transformer.ln_f.bias", "final_norm/bias", "same")]
    for i in range(self.num_layers):
      hf, us = f"transformer.h.{i}.", f"layers_{i}/"
      table += [
          (hf + "input_layernorm.weight", us + "attention_norm/scale", "same"),
          (hf + "input_layernorm.bias", us + "attention_norm/bias", "same"),
          (hf + "self_attention.query_key_value.weight", us + "attention/qkv/kernel", "linear"),
          (hf + "self_attention.query_key_value.bias", us + "attention/qkv/bias", "flat"),
          (hf + "self_attention.dense.weight", us + "attention/out/kernel", "linear2"),
          (hf + "self_attention.dense.bias", us + "attention/out/bias", "same"),
          (hf + "post_attention_layernorm.weight", us + "mlp_norm/scale", "same"),
          (hf + "post_attention_layernorm.bias", us + "mlp_norm/bias", "same"),
          (hf + "mlp.dense_h_to_4h.weight", us + "wi/kernel", "linear"),
          (hf + "mlp.dense_h_to_4h.bias", us + "wi/bias", "same"),
          (hf + "mlp.dense_4h_to_h.weight", us + "wo/kernel", "linear"),
          (hf + "mlp.dense_4h_to_h.bias", us + "wo/bias", "same"),
      ]
    return table


class BloomAttention(nn.Module):
  config: BloomConfig
  decode: bool = False
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, mask, bias, cache_index):
    cfg = self.config
    init = layers.normal_init(cfg.initializer_range)
    qkv = layers.Dense((cfg.num_heads, 3, cfg.head_dim), ("embed", "heads", None, "kv"),
                       dtype=self.dtype, param_dtype=self.param_dtype, kernel_init=init,
                       name="qkv")(x)
    query, key, value = qkv[:, :, :, 0], qkv[:, :, :, 1], qkv[:, :, :, 2]
    if self.decode:
      key, value = layers.update_kv_cache(self, key, value, cache_index)
    out = layers.attention(layers.constrain(query, layers.BLHK), key, value, mask=mask, bias=bias)
    out = layers.Dense((cfg.hidden_size,), ("heads", "kv", "embed"), in_dims=2, dtype=self.dtype,
                       param_dtype=self.param_dtype, kernel_init=init, name="out")(out)
    return layers.constrain(out, layers.BLE)


class BloomBlock(nn.Module):
  config: BloomConfig
  decode: bool = False
  deterministic: bool = True
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, mask, bias, cache_index):
    cfg = self.config
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    init = layers.normal_init(cfg.initializer_range)
    h = layers.Norm(cfg.layer_norm_epsilon, name="attention_norm", **kw)(x)
    h = BloomAttention(cfg, decode=self.decode, name="attention", **kw)(h, mask, bias, cache_index)
    x = x + nn.Dropout(cfg.hidden_dropout)(h, deterministic=self.deterministic)
    h = layers.Norm(cfg.layer_norm_epsilon, name="mlp_norm", **kw)(x)
    h = layers.Dense((4 * cfg.hidden_size,), ("embed", "mlp"), kernel_init=init, name="wi", **kw)(h)
    h = jax.nn.gelu(layers.constrain(h, layers.BLM), approximate=True)
    h = layers.Dense((cfg.hidden_size,), ("mlp", "embed"), kernel_init=init, name="wo", **kw)(h)
    x = x + nn.Dropout(cfg.hidden_dropout)(h, deterministic=self.deterministic)
    return layers.constrain(x, layers.BLE)


class Bloom(nn.Module):
  """BLOOM causal LM: `apply(params, input_ids, ...) -> logits [B, T, V]`."""
  config: BloomConfig
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  is_encoder_decoder = False

  @nn.compact
  def __call__(self, input_ids: Array, attention_mask: Array | None = None,
               segment_ids: Array | None = None, positions: Array | None = None,
               causal_attention: Array | None = None, decode: bool = False,
               deterministic: bool = True) -> Array:
    cfg = self.config
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    query_pos, key_pos, mask, cache_index = layers.SelfAttentionLayout(decode=decode, name="layout")(
        input_ids.shape, attention_mask, segment_ids, positions, causal_attention)
    del query_pos  # ALiBi is relative: slope * key position, shifted per row by softmax.
    bias = layers.alibi_bias(cfg.num_heads, key_pos)
    embed = layers.Embed(cfg.vocab_size, cfg.hidden_size, embedding_init=layers.normal_init(
        cfg.initializer_range), name="embed", **kw)
    x = layers.Norm(cfg.layer_norm_epsilon, name="embed_norm", **kw)(embed(input_ids))
    x = layers.constrain(x, layers.BLE)
    block = nn.remat(BloomBlock) if cfg.remat else BloomBlock
    for i in range(cfg.num_layers):
      x = block(cfg, decode=decode, deterministic=deterministic, name=f"layers_{i}", **kw)(
          x, mask, bias, cache_index)
    x = layers.Norm(cfg.layer_norm_epsilon, name="final_norm", **kw)(x)
    return layers.constrain(embed.attend(x), layers.BLV)
