"""BLOOM / BLOOMZ: ALiBi attention, embedding LayerNorm, GELU MLP, tied embeddings.

The base model of InstructAlign, on the shared `decoder` stack. Parameter layout (per
layer `layers_{i}`):
  attention/qkv/kernel [embed, heads, 3, head_dim]: HF's fused query_key_value, whose rows
    are ordered (head, q|k|v, head_dim), so import is one transpose and a reshape
    (`layers.MultiHeadAttention(fused_qkv=True)`).
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax

from underrep_jax.models import decoder
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
  attention: str = "xla"      # layers.attention implementation (registry.ATTENTION)
  scan_layers: bool = False  # one nn.scan over stacked layers (decoder.py)

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads

  @property
  def tie_word_embeddings(self) -> bool:
    return True  # BLOOM's head is always the input embedding (from_hf rejects untied)

  def flops_per_token(self, seq_len: int) -> float:
    """Training FLOPs per token (MaxText's count; see `decoder.flops_per_token`)."""
    d = self.hidden_size
    per_layer = 3 * d * d + d * d + 2 * d * 4 * d  # fused qkv, out; wi, wo (width 4 d)
    return decoder.flops_per_token(layer_matmul_params=per_layer, num_layers=self.num_layers,
                                   hidden=d, vocab=self.vocab_size, attention_width=d,
                                   seq_len=seq_len)

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


class BloomBlock(decoder.DecoderBlock):
  """LayerNorm, ALiBi attention with a fused qkv, GELU (tanh) MLP of width 4 d."""
  config: BloomConfig

  @property
  def dropout_rate(self) -> float:
    return self.config.hidden_dropout

  def norm(self, name):
    return _norm(self.config, name, **self.kw)

  def attention(self, h, mask, positions, bias, cache_index):
    cfg = self.config
    return layers.MultiHeadAttention(
        cfg.num_heads, cfg.head_dim, qkv_bias=True, out_bias=True, fused_qkv=True,
        decode=self.decode, kernel_init=layers.normal_init(cfg.initializer_range),
        implementation=cfg.attention, name="attention", **self.kw)(
            h, mask=mask, bias=bias, cache_index=cache_index)

  def feed_forward(self, h):
    cfg = self.config
    init = layers.normal_init(cfg.initializer_range)
    h = layers.Dense((4 * cfg.hidden_size,), ("embed", "mlp"), kernel_init=init, name="wi",
                     **self.kw)(h)
    h = jax.nn.gelu(layers.constrain(h, layers.BLM), approximate=True)
    return layers.Dense((cfg.hidden_size,), ("mlp", "embed"), kernel_init=init, name="wo",
                        **self.kw)(h)


class Bloom(decoder.DecoderLM):
  """BLOOM causal LM: `apply(params, input_ids, ...) -> logits [B, T, V]`."""
  config: BloomConfig
  block_cls = BloomBlock

  def norm(self, name):
    return _norm(self.config, name, **self.kw)

  def embed_tokens(self, embed, input_ids, positions, deterministic):
    """Token embeddings through their own LayerNorm (`embed_norm`)."""
    return self.norm("embed_norm")(embed(input_ids))

  def attention_bias(self, query_positions, key_positions):
    """ALiBi is relative: slope * key position, shifted per row by the softmax."""
    return layers.alibi_bias(self.config.num_heads, key_positions)


def _norm(cfg: BloomConfig, name: str, **kw) -> nn.Module:
  return layers.Norm(cfg.layer_norm_epsilon, name=name, **kw)
