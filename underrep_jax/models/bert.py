"""BERT-family encoders: BERT, MiniLM (a BertModel), RoBERTa and XLM-R.

Post-LayerNorm blocks, learned absolute positions and token types. RoBERTa/XLM-R number
positions from padding_idx + 1 and give pad tokens the padding_idx position, which is
what `position_offset` and `roberta_positions` reproduce.
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from underrep_jax.models import layers

Array = jax.Array

MODEL_TYPES = {"bert": "BertModel", "roberta": "RobertaModel", "xlm-roberta": "XLMRobertaModel"}


@dataclasses.dataclass(frozen=True)
class BertConfig:
  model_type: str = "bert"
  vocab_size: int = 30522
  hidden_size: int = 64
  num_layers: int = 2
  num_heads: int = 4
  intermediate_size: int = 128
  hidden_act: str = "gelu"
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  pad_token_id: int = 0
  with_pooler: bool = True
  hidden_dropout: float = 0.0
  initializer_range: float = 0.02
  remat: bool = False
  attention: str = "xla"      # layers.attention implementation (registry.ATTENTION)

  @property
  def roberta_positions(self) -> bool:
    return self.model_type in ("roberta", "xlm-roberta")

  @classmethod
  def from_hf(cls, hf) -> "BertConfig":
    """From a transformers Bert/RoBERTa/XLM-R config."""
    if hf.model_type not in MODEL_TYPES:
      raise ValueError(f"unsupported BERT-family model_type {hf.model_type!r}")
    if getattr(hf, "position_embedding_type", "absolute") != "absolute":
      raise ValueError("only absolute position embeddings are supported")
    return cls(model_type=hf.model_type, vocab_size=hf.vocab_size, hidden_size=hf.hidden_size,
               num_layers=hf.num_hidden_layers, num_heads=hf.num_attention_heads,
               intermediate_size=hf.intermediate_size, hidden_act=hf.hidden_act,
               max_position_embeddings=hf.max_position_embeddings,
               type_vocab_size=hf.type_vocab_size, layer_norm_eps=hf.layer_norm_eps,
               pad_token_id=hf.pad_token_id or 0, hidden_dropout=float(hf.hidden_dropout_prob),
               initializer_range=hf.initializer_range)

  def flops_per_token(self, seq_len: int) -> float:
    """Training FLOPs per token, counted as the decoders' (`decoder.flops_per_token`):
    3 x (2 FLOPs per weight of every layer's matmuls, q/k/v/out and the MLP, plus the
    attention's scores and values, 4 T d per layer without a causal mask). The input,
    position and token-type embeddings are gathers; there is no output head (the pooler,
    one [CLS] row, is left out too); biases and norms are not counted."""
    d = self.hidden_size
    per_layer = 4 * d * d + 2 * d * self.intermediate_size
    return 3.0 * self.num_layers * (2.0 * per_layer + 4.0 * seq_len * d)

  def match_checkpoint(self, names) -> "BertConfig":
    """Pooler or not, as the checkpoint has it (MLM checkpoints have none)."""
    return dataclasses.replace(self, with_pooler=any(n.endswith("pooler.dense.weight") for n in names))

  def to_hf(self) -> dict[str, Any]:
    return {"model_type": self.model_type, "architectures": [MODEL_TYPES[self.model_type]],
            "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_layers, "num_attention_heads": self.num_heads,
            "intermediate_size": self.intermediate_size, "hidden_act": self.hidden_act,
            "max_position_embeddings": self.max_position_embeddings,
            "type_vocab_size": self.type_vocab_size, "layer_norm_eps": self.layer_norm_eps,
            "pad_token_id": self.pad_token_id, "hidden_dropout_prob": self.hidden_dropout,
            "initializer_range": self.initializer_range,
            "position_embedding_type": "absolute"}

  def param_table(self) -> list[tuple[str, str, str]]:
    """(HF name, our param path, transform); see hf.py for the transforms."""
    table = [("embeddings.word_embeddings.weight", "embed/embedding", "same"),
             ("embeddings.position_embeddings.weight", "position_embed/embedding", "same"),
             ("embeddings.token_type_embeddings.weight", "token_type_embed/embedding", "same"),
             ("embeddings.LayerNorm.weight", "embed_norm/scale", "same"),
             ("embeddings.LayerNorm.bias", "embed_norm/bias", "same")]
    for i in range(self.num_layers):
      hf, us = f"encoder.layer.{i}.", f"layers_{i}/"
      for proj in ("query", "key", "value"):
        table += [(hf + f"attention.self.{proj}.weight", us + f"attention/{proj}/kernel", "linear"),
                  (hf + f"attention.self.{proj}.bias", us + f"attention/{proj}/bias", "flat")]
      table += [
          (hf + "attention.output.dense.weight", us + "attention/out/kernel", "linear2"),
          (hf + "attention.output.dense.bias", us + "attention/out/bias", "same"),
          (hf + "attention.output.LayerNorm.weight", us + "attention_norm/scale", "same"),
          (hf + "attention.output.LayerNorm.bias", us + "attention_norm/bias", "same"),
          (hf + "intermediate.dense.weight", us + "wi/kernel", "linear"),
          (hf + "intermediate.dense.bias", us + "wi/bias", "same"),
          (hf + "output.dense.weight", us + "wo/kernel", "linear"),
          (hf + "output.dense.bias", us + "wo/bias", "same"),
          (hf + "output.LayerNorm.weight", us + "mlp_norm/scale", "same"),
          (hf + "output.LayerNorm.bias", us + "mlp_norm/bias", "same"),
      ]
    if self.with_pooler:
      table += [("pooler.dense.weight", "pooler/kernel", "linear"),
                ("pooler.dense.bias", "pooler/bias", "same")]
    return table


class BertBlock(nn.Module):
  config: BertConfig
  deterministic: bool = True
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, mask):
    cfg = self.config
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    init = layers.normal_init(cfg.initializer_range)
    h = layers.MultiHeadAttention(cfg.num_heads, cfg.hidden_size // cfg.num_heads, qkv_bias=True,
                                  out_bias=True, kernel_init=init, implementation=cfg.attention,
                                  name="attention", **kw)(x, mask=mask)
    h = nn.Dropout(cfg.hidden_dropout)(h, deterministic=self.deterministic)
    x = layers.Norm(cfg.layer_norm_eps, name="attention_norm", **kw)(x + h)
    h = layers.Dense((cfg.intermediate_size,), ("embed", "mlp"), kernel_init=init, name="wi", **kw)(x)
    h = layers.activation(cfg.hidden_act)(layers.constrain(h, layers.BLM))
    h = layers.Dense((cfg.hidden_size,), ("mlp", "embed"), kernel_init=init, name="wo", **kw)(h)
    h = nn.Dropout(cfg.hidden_dropout)(h, deterministic=self.deterministic)
    x = layers.Norm(cfg.layer_norm_eps, name="mlp_norm", **kw)(x + h)
    return layers.constrain(x, layers.BLE)


class BertEncoder(nn.Module):
  """`apply(params, input_ids, attention_mask, ...) -> (hidden [B, T, D], pooled [B, D] | None)`.

  `positions` (0-based, e.g. restarting per packed segment) and `segment_ids` serve
  packed batches; by default positions follow the HF model (RoBERTa: skipping pads).
  """
  config: BertConfig
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  is_encoder_decoder = False

  @nn.compact
  def __call__(self, input_ids: Array, attention_mask: Array | None = None,
               token_type_ids: Array | None = None, positions: Array | None = None,
               segment_ids: Array | None = None, deterministic: bool = True):
    cfg = self.config
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    init = layers.normal_init(cfg.initializer_range)
    if positions is not None:
      position_index = positions + (cfg.pad_token_id + 1 if cfg.roberta_positions else 0)
    elif cfg.roberta_positions:
      real = input_ids != cfg.pad_token_id
      position_index = jnp.where(real, jnp.cumsum(real, axis=-1) + cfg.pad_token_id, cfg.pad_token_id)
    else:
      position_index = jnp.broadcast_to(jnp.arange(input_ids.shape[1]), input_ids.shape)
    if token_type_ids is None:
      token_type_ids = jnp.zeros_like(input_ids)
    embed = lambda n, name: layers.Embed(n, cfg.hidden_size, embedding_init=init, name=name, **kw)
    pos_embed = layers.Embed(cfg.max_position_embeddings, cfg.hidden_size, axes=(None, "embed"),
                             embedding_init=init, name="position_embed", **kw)
    type_embed = layers.Embed(cfg.type_vocab_size, cfg.hidden_size, axes=(None, "embed"),
                              embedding_init=init, name="token_type_embed", **kw)
    x = embed(cfg.vocab_size, "embed")(input_ids) + pos_embed(position_index) + type_embed(token_type_ids)
    x = layers.Norm(cfg.layer_norm_eps, name="embed_norm", **kw)(x)
    x = layers.constrain(nn.Dropout(cfg.hidden_dropout)(x, deterministic=deterministic), layers.BLE)
    mask = layers.padding_mask(None, attention_mask)
    if segment_ids is not None:
      mask = layers.combine_masks(mask, segment_ids[:, None, :, None] == segment_ids[:, None, None, :])
    block = nn.remat(BertBlock) if cfg.remat else BertBlock
    for i in range(cfg.num_layers):
      x = block(cfg, deterministic=deterministic, name=f"layers_{i}", **kw)(x, mask)
    pooled = None
    if cfg.with_pooler:
      pooled = jnp.tanh(layers.Dense((cfg.hidden_size,), ("embed", None), kernel_init=init,
                                     name="pooler", **kw)(x[:, 0]))
    return x, pooled
