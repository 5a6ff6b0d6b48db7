"""XGLM: fairseq-style pre-LN decoder with sinusoidal positions and scaled embeddings.

Positions enter as sinusoids at position + 2 (fairseq's padding offset); the token
embeddings are multiplied by sqrt(d_model); the output layer is the tied embedding.
"""

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax

from underrep_jax.models import decoder
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
  attention: str = "xla"      # layers.attention implementation (registry.ATTENTION)
  scan_layers: bool = False  # one nn.scan over stacked layers (decoder.py)

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

  def flops_per_token(self, seq_len: int) -> float:
    """Training FLOPs per token (MaxText's count; see `decoder.flops_per_token`)."""
    d = self.hidden_size
    per_layer = 4 * d * d + 2 * d * self.ffn_dim  # q, k, v, out; fc1, fc2
    return decoder.flops_per_token(layer_matmul_params=per_layer, num_layers=self.num_layers,
                                   hidden=d, vocab=self.vocab_size, attention_width=d,
                                   seq_len=seq_len)

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


class XGLMBlock(decoder.DecoderBlock):
  """LayerNorm, biased multi-head attention, biased MLP with the configured activation."""
  config: XGLMConfig

  def norm(self, name):
    return _norm(self.config, name, **self.kw)

  def attention(self, h, mask, positions, bias, cache_index):
    cfg = self.config
    return layers.MultiHeadAttention(
        cfg.num_heads, cfg.hidden_size // cfg.num_heads, qkv_bias=True, out_bias=True,
        decode=self.decode, kernel_init=layers.normal_init(cfg.initializer_range),
        implementation=cfg.attention, name="attention", **self.kw)(
            h, mask=mask, cache_index=cache_index)

  def feed_forward(self, h):
    cfg = self.config
    init = layers.normal_init(cfg.initializer_range)
    h = layers.Dense((cfg.ffn_dim,), ("embed", "mlp"), kernel_init=init, name="wi", **self.kw)(h)
    h = layers.activation(cfg.activation_function)(layers.constrain(h, layers.BLM))
    return layers.Dense((cfg.hidden_size,), ("mlp", "embed"), kernel_init=init, name="wo",
                        **self.kw)(h)


class XGLM(decoder.DecoderLM):
  """XGLM causal LM: `apply(params, input_ids, ...) -> logits [B, T, V]`."""
  config: XGLMConfig
  block_cls = XGLMBlock

  def norm(self, name):
    return _norm(self.config, name, **self.kw)

  def embed_tokens(self, embed, input_ids, positions, deterministic):
    """sqrt(d)-scaled embeddings plus sinusoids at position + 2, then dropout."""
    cfg = self.config
    scale = math.sqrt(cfg.hidden_size) if cfg.scale_embedding else 1.0
    x = embed(input_ids) * scale + layers.sinusoidal_embedding(
        positions + POSITION_OFFSET, cfg.hidden_size).astype(self.dtype)
    return nn.Dropout(cfg.dropout)(x, deterministic=deterministic)


def _norm(cfg: XGLMConfig, name: str, **kw) -> nn.Module:
  return layers.Norm(cfg.layer_norm_eps, name=name, **kw)
