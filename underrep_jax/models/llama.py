"""The Llama family: RoPE, RMSNorm, SwiGLU, grouped-query attention.

One module covers Llama 2/3 (incl. 'llama3' and 'linear' RoPE scaling), Mistral (sliding
window) and Qwen2 (q/k/v biases); `model_type` records which HF variant it came from so
export writes the same kind back.
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax

from underrep_jax.models import decoder
from underrep_jax.models import layers

Array = jax.Array

MODEL_TYPES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
               "qwen2": "Qwen2ForCausalLM"}


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
  model_type: str = "llama"
  vocab_size: int = 32000
  hidden_size: int = 64
  intermediate_size: int = 128
  num_layers: int = 2
  num_heads: int = 4
  num_kv_heads: int = 2
  head_dim: int = 16
  rms_norm_eps: float = 1e-6
  rope_theta: float = 10000.0
  rope_scaling: tuple[tuple[str, Any], ...] | None = None   # sorted (key, value) pairs
  qkv_bias: bool = False
  out_bias: bool = False
  mlp_bias: bool = False
  tie_word_embeddings: bool = False
  sliding_window: int | None = None
  initializer_range: float = 0.02
  dropout: float = 0.0
  remat: bool = False
  attention: str = "xla"      # layers.attention implementation (registry.ATTENTION)
  scan_layers: bool = False  # one nn.scan over stacked layers (decoder.py)

  @classmethod
  def from_hf(cls, hf) -> "LlamaConfig":
    """From a transformers Llama/Mistral/Qwen2 config (its `rope_parameters` standardised)."""
    model_type = hf.model_type
    if model_type not in MODEL_TYPES:
      raise ValueError(f"unsupported Llama-family model_type {model_type!r}")
    if hf.hidden_act != "silu":
      raise ValueError(f"{model_type}: only hidden_act='silu' is supported")
    rope = dict(hf.rope_parameters or {})
    theta = float(rope.pop("rope_theta", 10000.0))
    if "type" in rope:
      rope["rope_type"] = rope.pop("type")
    scaling = None if rope.get("rope_type", "default") == "default" else tuple(sorted(rope.items()))
    attention_bias = bool(getattr(hf, "attention_bias", False))
    sliding_window = hf.sliding_window if model_type == "mistral" else None
    if model_type == "qwen2" and hf.use_sliding_window:
      raise ValueError("Qwen2 with use_sliding_window=True is not supported")
    heads = hf.num_attention_heads
    return cls(
        model_type=model_type, vocab_size=hf.vocab_size, hidden_size=hf.hidden_size,
        intermediate_size=hf.intermediate_size, num_layers=hf.num_hidden_layers,
        num_heads=heads, num_kv_heads=hf.num_key_value_heads or heads,
        head_dim=getattr(hf, "head_dim", None) or hf.hidden_size // heads,
        rms_norm_eps=hf.rms_norm_eps, rope_theta=theta, rope_scaling=scaling,
        qkv_bias=attention_bias or model_type == "qwen2", out_bias=attention_bias,
        mlp_bias=bool(getattr(hf, "mlp_bias", False)),
        tie_word_embeddings=bool(hf.tie_word_embeddings), sliding_window=sliding_window,
        initializer_range=hf.initializer_range, dropout=float(hf.attention_dropout))

  def to_hf(self) -> dict[str, Any]:
    rope = {"rope_theta": self.rope_theta, "rope_type": "default"}
    rope.update(dict(self.rope_scaling or ()))
    out = {"model_type": self.model_type, "architectures": [MODEL_TYPES[self.model_type]],
           "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
           "intermediate_size": self.intermediate_size, "num_hidden_layers": self.num_layers,
           "num_attention_heads": self.num_heads, "num_key_value_heads": self.num_kv_heads,
           "head_dim": self.head_dim, "rms_norm_eps": self.rms_norm_eps, "hidden_act": "silu",
           "rope_parameters": rope, "tie_word_embeddings": self.tie_word_embeddings,
           "initializer_range": self.initializer_range}
    if self.model_type == "llama":
      if self.qkv_bias != self.out_bias:
        raise ValueError("Llama export needs q/k/v and output biases to agree (attention_bias)")
      out.update(attention_bias=self.qkv_bias, mlp_bias=self.mlp_bias)
    elif self.model_type == "mistral":
      out.update(sliding_window=self.sliding_window)
    else:
      out.update(use_sliding_window=False, sliding_window=None)
    return out

  def flops_per_token(self, seq_len: int) -> float:
    """Training FLOPs per token (MaxText's count; see `decoder.flops_per_token`)."""
    d, width = self.hidden_size, self.num_heads * self.head_dim
    per_layer = (d * (self.num_heads + 2 * self.num_kv_heads) * self.head_dim  # q, k, v
                 + width * d                                                # out
                 + 3 * d * self.intermediate_size)                          # gate, up, down
    return decoder.flops_per_token(layer_matmul_params=per_layer, num_layers=self.num_layers,
                                   hidden=d, vocab=self.vocab_size, attention_width=width,
                                   seq_len=seq_len)

  def param_table(self) -> list[tuple[str, str, str]]:
    """(HF name, our param path, transform); see hf.py for the transforms."""
    table = [("model.embed_tokens.weight", "embed/embedding", "same"),
             ("model.norm.weight", "final_norm/scale", "same")]
    if not self.tie_word_embeddings:
      table.append(("lm_head.weight", "lm_head/kernel", "linear"))
    for i in range(self.num_layers):
      hf, us = f"model.layers.{i}.", f"layers_{i}/"
      table += [(hf + "input_layernorm.weight", us + "attention_norm/scale", "same"),
                (hf + "post_attention_layernorm.weight", us + "mlp_norm/scale", "same"),
                (hf + "self_attn.o_proj.weight", us + "attention/out/kernel", "linear2")]
      for proj, ours in (("q_proj", "query"), ("k_proj", "key"), ("v_proj", "value")):
        table.append((hf + f"self_attn.{proj}.weight", us + f"attention/{ours}/kernel", "linear"))
        if self.qkv_bias:
          table.append((hf + f"self_attn.{proj}.bias", us + f"attention/{ours}/bias", "flat"))
      if self.out_bias:
        table.append((hf + "self_attn.o_proj.bias", us + "attention/out/bias", "same"))
      for proj in ("gate_proj", "up_proj", "down_proj"):
        table.append((hf + f"mlp.{proj}.weight", us + f"{proj}/kernel", "linear"))
        if self.mlp_bias:
          table.append((hf + f"mlp.{proj}.bias", us + f"{proj}/bias", "same"))
    return table


class LlamaBlock(decoder.DecoderBlock):
  """RMSNorm, RoPE attention with grouped KV heads, SwiGLU MLP."""
  config: LlamaConfig

  def norm(self, name):
    return _norm(self.config, name, **self.kw)

  def attention(self, h, mask, positions, bias, cache_index):
    cfg = self.config
    return layers.MultiHeadAttention(
        cfg.num_heads, cfg.head_dim, num_kv_heads=cfg.num_kv_heads, qkv_bias=cfg.qkv_bias,
        out_bias=cfg.out_bias, rope_theta=cfg.rope_theta, rope_scaling=cfg.rope_scaling,
        decode=self.decode, kernel_init=layers.normal_init(cfg.initializer_range),
        implementation=cfg.attention, name="attention", **self.kw)(
            h, mask=mask, positions=positions, cache_index=cache_index)

  def feed_forward(self, h):
    cfg = self.config
    dense = lambda n, axes, name: layers.Dense(
        (n,), axes, use_bias=cfg.mlp_bias, kernel_init=layers.normal_init(cfg.initializer_range),
        name=name, **self.kw)
    gate = dense(cfg.intermediate_size, ("embed", "mlp"), "gate_proj")(h)
    up = dense(cfg.intermediate_size, ("embed", "mlp"), "up_proj")(h)
    h = layers.constrain(jax.nn.silu(gate) * up, layers.BLM)
    return dense(cfg.hidden_size, ("mlp", "embed"), "down_proj")(h)


class Llama(decoder.DecoderLM):
  """Llama/Mistral/Qwen2 causal LM: `apply(params, input_ids, ...) -> logits [B, T, V]`."""
  config: LlamaConfig
  block_cls = LlamaBlock

  def norm(self, name):
    return _norm(self.config, name, **self.kw)


def _norm(cfg: LlamaConfig, name: str, **kw) -> nn.Module:
  return layers.Norm(cfg.rms_norm_eps, rms=True, name=name, **kw)
