"""XGLM: fairseq-style pre-LN decoder with sinusoidal positions and scaled embeddings.

Positions enter as sinusoids at position + 2 (fairseq's padding offset); the token
embeddings are multiplied by sqrt(d_model); the output layer is the tied embedding.
"""

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from underrep_jax.models import layers

Array = jax.Array

POSITION_OFFSET = 2


@dataclasses.dataclass(frozen=True)
class XGLMConfig:
  vocab_size: int = 256008
  hidden_size: int = 64
  ffn_dim: int = 128
  num_layers: int = 2
  num_heads: int = 4
  activation_function: str = "gelu"
  scale_embedding: bool = True
  tie_word_embeddings: bool = True
  layer_norm_eps: float = 1e-5
  dropout: float = 0.0
  initializer_range: float = 0.02
  remat: bool = False

  @classmethod
  def from_hf(cls, hf) -> "XGLMConfig":
    """From a transformers XGLMConfig (aliases resolved)."""
    return cls(vocab_size=hf.vocab_size, hidden_size=hf.d_model, ffn_dim=hf.ffn_dim,
               num_layers=hf.num_layers, num_heads=hf.attention_heads,
               activation_function=hf.activation_function, scale_embedding=hf.scale_embedding,
               tie_word_embeddings=bool(hf.tie_word_embeddings), dropout=float(hf.dropout),
               initializer_range=hf.init_std)

  def to_hf(self) -> dict[str, Any]:
    return {"model_type": "xglm", "architectures": ["XGLMForCausalLM"],
            "vocab_size": self.vocab_size, "d_model": self.hidden_size, "ffn_dim": self.ffn_dim,
            "num_layers": self.num_layers, "attention_heads": self.num_heads,
            "activation_function": self.activation_function,
            "scale_embedding": self.scale_embedding,
            "tie_word_embeddings": self.tie_word_embeddings, "dropout": self.dropout,
            "init_std": self.initializer_range}

  def param_table(self) -> list[tuple[str, str, str]]:
    """(HF name, our param path, transform); see hf.py for the transforms."""
    table = [("model.embed_tokens.weight", "embed/embedding", "same"),
             ("model.layer_norm.weight", "final_norm/scale", "same"),
             ("model.layer_norm.bias", "final_norm/bias", "same")]
    if not self.tie_word_embeddings:
      table.append(("lm_head.weight", "lm_head/kernel", "linear"))
    for i in range(self.num_layers):
      hf, us = f"model.layers.{i}.", f"layers_{i}/"
      for proj, ours in (("q_proj", "query"), ("k_proj", "key"), ("v_proj", "value")):
        table += [(hf + f"self_attn.{proj}.weight", us + f"attention/{ours}/kernel", "linear"),
                  (hf + f"self_attn.{proj}.bias", us + f"attention/{ours}/bias", "flat")]
      for hf_norm, ours in (("self_attn_layer_norm", "attention_norm"), ("final_layer_norm", "mlp_norm")):
        table += [(hf + f"{hf_norm}.weight", us + f"{ours}/scale", "same"),
                  (hf + f"{hf_norm}.bias", us + f"{ours}/bias", "same")]
      table += [(hf + "self_attn.out_proj.weight", us + "attention/out/kernel", "linear2"),
                (hf + "self_attn.out_proj.bias", us + "attention/out/bias", "same"),
                (hf + "fc1.weight", us + "wi/kernel", "linear"),
                (hf + "fc1.bias", us + "wi/bias", "same"),
                (hf + "fc2.weight", us + "wo/kernel", "linear"),
                (hf + "fc2.bias", us + "wo/bias", "same")]
    return table


class XGLMBlock(nn.Module):
  config: XGLMConfig
  decode: bool = False
  deterministic: bool = True
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, mask, cache_index):
    cfg = self.config
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    init = layers.normal_init(cfg.initializer_range)
    h = layers.Norm(cfg.layer_norm_eps, name="attention_norm", **kw)(x)
    h = layers.MultiHeadAttention(cfg.num_heads, cfg.hidden_size // cfg.num_heads, qkv_bias=True,
                                  out_bias=True, decode=self.decode, kernel_init=init,
                                  name="attention", **kw)(h, mask=mask, cache_index=cache_index)
    x = x + nn.Dropout(cfg.dropout)(h, deterministic=self.deterministic)
    h = layers.Norm(cfg.layer_norm_eps, name="mlp_norm", **kw)(x)
    h = layers.Dense((cfg.ffn_dim,), ("embed", "mlp"), kernel_init=init, name="wi", **kw)(h)
    h = layers.activation(cfg.activation_function)(layers.constrain(h, layers.BLM))
    h = layers.Dense((cfg.hidden_size,), ("mlp", "embed"), kernel_init=init, name="wo", **kw)(h)
    x = x + nn.Dropout(cfg.dropout)(h, deterministic=self.deterministic)
    return layers.constrain(x, layers.BLE)


class XGLM(nn.Module):
  """XGLM causal LM: `apply(params, input_ids, ...) -> logits [B, T, V]`."""
  config: XGLMConfig
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
    positions, _, mask, cache_index = layers.SelfAttentionLayout(decode=decode, name="layout")(
        input_ids.shape, attention_mask, segment_ids, positions, causal_attention)
    embed = layers.Embed(cfg.vocab_size, cfg.hidden_size, embedding_init=layers.normal_init(
        cfg.initializer_range), name="embed", **kw)
    scale = math.sqrt(cfg.hidden_size) if cfg.scale_embedding else 1.0
    x = embed(input_ids) * scale + layers.sinusoidal_embedding(
        positions + POSITION_OFFSET, cfg.hidden_size).astype(self.dtype)
    x = nn.Dropout(cfg.dropout)(x, deterministic=deterministic)
    x = layers.constrain(x, layers.BLE)
    block = nn.remat(XGLMBlock) if cfg.remat else XGLMBlock
    for i in range(cfg.num_layers):
      x = block(cfg, decode=decode, deterministic=deterministic, name=f"layers_{i}", **kw)(
          x, mask, cache_index)
    x = layers.Norm(cfg.layer_norm_eps, name="final_norm", **kw)(x)
    if cfg.tie_word_embeddings:
      logits = embed.attend(x)
    else:
      logits = layers.Dense((cfg.vocab_size,), ("embed", "vocab"), use_bias=False,
                            kernel_init=layers.normal_init(cfg.initializer_range),
                            name="lm_head", **kw)(x)
    return layers.constrain(logits, layers.BLV)
