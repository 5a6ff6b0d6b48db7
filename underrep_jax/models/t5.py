"""T5 v1.1 / mT5 / mT0 encoder-decoder.

RMSNorm without bias, unscaled attention with learned relative-position buckets (one
table per stack, from its first layer), gated-GELU MLP, untied LM head (mT5; a tied head
is the shared embedding, as transformers 5 computes it). `encode` and `decode` are
separate methods so generation runs the encoder once and then the cached decoder.
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from underrep_jax.models import layers

Array = jax.Array

MODEL_TYPES = {"t5": "T5ForConditionalGeneration", "mt5": "MT5ForConditionalGeneration"}


@dataclasses.dataclass(frozen=True)
class T5Config:
  model_type: str = "mt5"
  vocab_size: int = 250112
  d_model: int = 64
  d_kv: int = 16
  d_ff: int = 128
  num_layers: int = 2
  num_decoder_layers: int = 2
  num_heads: int = 4
  relative_attention_num_buckets: int = 32
  relative_attention_max_distance: int = 128
  layer_norm_epsilon: float = 1e-6
  dense_act_fn: str = "gelu_new"
  is_gated_act: bool = True
  tie_word_embeddings: bool = False
  pad_token_id: int = 0
  eos_token_id: int = 1
  decoder_start_token_id: int = 0
  dropout_rate: float = 0.0
  initializer_factor: float = 1.0
  remat: bool = False
  attention: str = "xla"      # layers.attention implementation (registry.ATTENTION)

  @classmethod
  def from_hf(cls, hf) -> "T5Config":
    """From a transformers T5Config/MT5Config (which parses feed_forward_proj itself)."""
    if hf.model_type not in MODEL_TYPES:
      raise ValueError(f"unsupported T5-family model_type {hf.model_type!r}")
    eos = hf.eos_token_id[0] if isinstance(hf.eos_token_id, list) else hf.eos_token_id
    return cls(model_type=hf.model_type, vocab_size=hf.vocab_size, d_model=hf.d_model,
               d_kv=hf.d_kv, d_ff=hf.d_ff, num_layers=hf.num_layers,
               num_decoder_layers=hf.num_decoder_layers or hf.num_layers, num_heads=hf.num_heads,
               relative_attention_num_buckets=hf.relative_attention_num_buckets,
               relative_attention_max_distance=hf.relative_attention_max_distance,
               layer_norm_epsilon=hf.layer_norm_epsilon, dense_act_fn=hf.dense_act_fn,
               is_gated_act=bool(hf.is_gated_act),
               tie_word_embeddings=bool(hf.tie_word_embeddings),
               pad_token_id=0 if hf.pad_token_id is None else hf.pad_token_id,
               eos_token_id=1 if eos is None else eos,
               decoder_start_token_id=0 if hf.decoder_start_token_id is None
               else hf.decoder_start_token_id,
               dropout_rate=float(hf.dropout_rate), initializer_factor=hf.initializer_factor)

  def to_hf(self) -> dict[str, Any]:
    act = "gelu" if self.dense_act_fn == "gelu_new" else self.dense_act_fn
    return {"model_type": self.model_type, "architectures": [MODEL_TYPES[self.model_type]],
            "vocab_size": self.vocab_size, "d_model": self.d_model, "d_kv": self.d_kv,
            "d_ff": self.d_ff, "num_layers": self.num_layers,
            "num_decoder_layers": self.num_decoder_layers, "num_heads": self.num_heads,
            "relative_attention_num_buckets": self.relative_attention_num_buckets,
            "relative_attention_max_distance": self.relative_attention_max_distance,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "feed_forward_proj": ("gated-" if self.is_gated_act else "") + act,
            "tie_word_embeddings": self.tie_word_embeddings, "pad_token_id": self.pad_token_id,
            "eos_token_id": self.eos_token_id,
            "decoder_start_token_id": self.decoder_start_token_id,
            "dropout_rate": self.dropout_rate, "initializer_factor": self.initializer_factor,
            "is_encoder_decoder": True}

  def param_table(self) -> list[tuple[str, str, str]]:
    """(HF name, our param path, transform); see hf.py for the transforms."""
    table = [("shared.weight", "embed/embedding", "same")]
    if not self.tie_word_embeddings:
      table.append(("lm_head.weight", "lm_head/kernel", "linear"))
    mlp = ("wi_0", "wi_1", "wo") if self.is_gated_act else ("wi", "wo")
    for stack, num_layers in (("encoder", self.num_layers), ("decoder", self.num_decoder_layers)):
      table += [(f"{stack}.final_layer_norm.weight", f"{stack}/final_norm/scale", "same"),
                (f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                 f"{stack}/relative_bias/embedding", "same")]
      for i in range(num_layers):
        hf, us = f"{stack}.block.{i}.layer.", f"{stack}/layers_{i}/"
        sublayers = [("0", "SelfAttention", "attention")]
        if stack == "decoder":
          sublayers.append(("1", "EncDecAttention", "cross_attention"))
        for index, hf_attn, ours in sublayers:
          table.append((hf + f"{index}.layer_norm.weight", us + f"{ours}_norm/scale", "same"))
          for proj, our_proj in (("q", "query"), ("k", "key"), ("v", "value")):
            table.append((hf + f"{index}.{hf_attn}.{proj}.weight",
                          us + f"{ours}/{our_proj}/kernel", "linear"))
          table.append((hf + f"{index}.{hf_attn}.o.weight", us + f"{ours}/out/kernel", "linear2"))
        ff = str(len(sublayers))
        table.append((hf + f"{ff}.layer_norm.weight", us + "mlp_norm/scale", "same"))
        for name in mlp:
          table.append((hf + f"{ff}.DenseReluDense.{name}.weight", us + f"{name}/kernel", "linear"))
    return table


class T5Block(nn.Module):
  config: T5Config
  is_decoder: bool = False
  decode: bool = False
  deterministic: bool = True
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, mask, bias, cache_index, encoded, cross_mask):
    cfg = self.config
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    f = cfg.initializer_factor
    norm = lambda name: layers.Norm(cfg.layer_norm_epsilon, rms=True, name=name, **kw)
    drop = lambda h: nn.Dropout(cfg.dropout_rate)(h, deterministic=self.deterministic)
    attention = lambda name, decode: layers.MultiHeadAttention(
        cfg.num_heads, cfg.d_kv, scale=1.0, decode=decode,
        kernel_init=layers.normal_init(f * (cfg.d_model * cfg.d_kv) ** -0.5),
        implementation=cfg.attention, name=name, **kw)
    h = attention("attention", self.decode)(norm("attention_norm")(x), mask=mask, bias=bias,
                                            cache_index=cache_index)
    x = x + drop(h)
    if self.is_decoder:
      h = attention("cross_attention", False)(norm("cross_attention_norm")(x), mask=cross_mask,
                                              kv_input=encoded)
      x = x + drop(h)
    h = norm("mlp_norm")(x)
    wi_init = layers.normal_init(f * cfg.d_model ** -0.5)
    dense_in = lambda name: layers.Dense((cfg.d_ff,), ("embed", "mlp"), use_bias=False,
                                         kernel_init=wi_init, name=name, **kw)(h)
    act = layers.activation(cfg.dense_act_fn)
    if cfg.is_gated_act:
      h = act(dense_in("wi_0")) * dense_in("wi_1")
    else:
      h = act(dense_in("wi"))
    h = layers.Dense((cfg.d_model,), ("mlp", "embed"), use_bias=False,
                     kernel_init=layers.normal_init(f * cfg.d_ff ** -0.5), name="wo", **kw)(
                         layers.constrain(h, layers.BLM))
    x = x + drop(h)
    return layers.constrain(x, layers.BLE)


class T5Stack(nn.Module):
  """The encoder (bidirectional) or decoder (causal, cross-attending) stack."""
  config: T5Config
  is_decoder: bool = False
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, attention_mask=None, segment_ids=None, positions=None, encoded=None,
               cross_mask=None, decode: bool = False, deterministic: bool = True):
    cfg = self.config
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    length = x.shape[1]
    _, _, mask, cache_index = layers.SelfAttentionLayout(
        causal=self.is_decoder, decode=decode, name="layout")(
            x.shape[:2], attention_mask, segment_ids, positions)
    if positions is None:  # T5 buckets token distances; HF ignores padding here.
      start = 0 if cache_index is None else cache_index
      positions = (start + jnp.arange(length))[None]
      key_positions = jnp.arange(length if mask is None else mask.shape[-1])[None]
    else:
      key_positions = positions
    bias = layers.RelativePositionBias(
        cfg.relative_attention_num_buckets, cfg.relative_attention_max_distance, cfg.num_heads,
        bidirectional=not self.is_decoder, param_dtype=self.param_dtype,
        embedding_init=layers.normal_init(cfg.initializer_factor * cfg.d_model ** -0.5),
        name="relative_bias")(positions, key_positions)
    x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
    num_layers = cfg.num_decoder_layers if self.is_decoder else cfg.num_layers
    block = nn.remat(T5Block) if cfg.remat else T5Block
    for i in range(num_layers):
      x = block(cfg, is_decoder=self.is_decoder, decode=decode, deterministic=deterministic,
                name=f"layers_{i}", **kw)(x, mask, bias, cache_index, encoded, cross_mask)
    x = layers.Norm(cfg.layer_norm_epsilon, rms=True, name="final_norm", **kw)(x)
    return nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)


class T5(nn.Module):
  """`apply(params, encoder_input_tokens, decoder_input_tokens, ...) -> logits [B, T_dec, V]`.

  Without `encoder_mask` and `encoder_segment_ids`, encoder pads are the tokens equal to
  `pad_token_id` (T5X convention). Positions (e.g. restarting per packed segment) only
  feed the relative buckets, where they equal index distances within a segment.
  """
  config: T5Config
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  is_encoder_decoder = True

  def setup(self):
    cfg = self.config
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    self.embed = layers.Embed(cfg.vocab_size, cfg.d_model,
                              embedding_init=layers.normal_init(cfg.initializer_factor), **kw)
    self.encoder = T5Stack(cfg, is_decoder=False, **kw)
    self.decoder = T5Stack(cfg, is_decoder=True, **kw)
    if not cfg.tie_word_embeddings:
      self.lm_head = layers.Dense((cfg.vocab_size,), ("embed", "vocab"), use_bias=False,
                                  kernel_init=layers.normal_init(cfg.initializer_factor), **kw)

  def _encoder_mask(self, encoder_input_tokens, encoder_mask, encoder_segment_ids):
    if encoder_mask is None and encoder_segment_ids is None:
      return encoder_input_tokens != self.config.pad_token_id
    return encoder_mask

  def encode(self, encoder_input_tokens: Array, encoder_mask: Array | None = None,
             encoder_segment_ids: Array | None = None, encoder_positions: Array | None = None,
             deterministic: bool = True) -> Array:
    """Encoder hidden states [B, S, D]."""
    mask = self._encoder_mask(encoder_input_tokens, encoder_mask, encoder_segment_ids)
    x = layers.constrain(self.embed(encoder_input_tokens), layers.BLE)
    return self.encoder(x, mask, encoder_segment_ids, encoder_positions,
                        deterministic=deterministic)

  def decode(self, encoded: Array, encoder_input_tokens: Array, decoder_input_tokens: Array,
             encoder_mask: Array | None = None, decoder_mask: Array | None = None,
             encoder_segment_ids: Array | None = None, decoder_segment_ids: Array | None = None,
             decoder_positions: Array | None = None, decode: bool = False,
             deterministic: bool = True) -> Array:
    """Logits [B, T, V] of the decoder over `encoded`; `decode=True` uses the KV cache."""
    enc_mask = self._encoder_mask(encoder_input_tokens, encoder_mask, encoder_segment_ids)
    cross_mask = layers.padding_mask(None, enc_mask)
    if encoder_segment_ids is not None and decoder_segment_ids is not None:
      cross_mask = layers.combine_masks(
          cross_mask, decoder_segment_ids[:, None, :, None] == encoder_segment_ids[:, None, None, :])
    x = layers.constrain(self.embed(decoder_input_tokens), layers.BLE)
    x = self.decoder(x, decoder_mask, decoder_segment_ids, decoder_positions, encoded=encoded,
                     cross_mask=cross_mask, decode=decode, deterministic=deterministic)
    logits = self.embed.attend(x) if self.config.tie_word_embeddings else self.lm_head(x)
    return layers.constrain(logits, layers.BLV)

  def __call__(self, encoder_input_tokens: Array, decoder_input_tokens: Array,
               encoder_mask: Array | None = None, decoder_mask: Array | None = None,
               encoder_segment_ids: Array | None = None, encoder_positions: Array | None = None,
               decoder_segment_ids: Array | None = None, decoder_positions: Array | None = None,
               decode: bool = False, deterministic: bool = True) -> Array:
    encoded = self.encode(encoder_input_tokens, encoder_mask, encoder_segment_ids,
                          encoder_positions, deterministic)
    return self.decode(encoded, encoder_input_tokens, decoder_input_tokens, encoder_mask,
                       decoder_mask, encoder_segment_ids, decoder_segment_ids, decoder_positions,
                       decode, deterministic)
