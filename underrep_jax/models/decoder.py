"""The decoder-only stack that BLOOM, Llama (Mistral, Qwen2) and XGLM share.

`DecoderLM` is embed -> positions -> layers_{i} (each in `nn.remat` when the config asks)
-> final_norm -> tied or untied head, with the KV-cache `decode` path; `DecoderBlock` is
the pre-norm residual layer x + attention(norm(x)), x + feed_forward(norm(x)). A family
subclasses both and fills in only what differs (its norm, attention options, MLP, how
positions enter), so parameter paths are the same in every family:
  embed/embedding, layers_{i}/{attention_norm,attention,mlp_norm,...}, final_norm,
  lm_head/kernel (untied only).
With `config.scan_layers` the layers are one `nn.scan` (compiled once, not num_layers
times, as MaxText does): their parameters are stacked under `layers/...` with a leading
[num_layers] axis (logical name "layers"), and each KV-cache array of the layers under
`layers/...` with the layer axis second, so every cache array stays batch-major (scoring
and beam search repeat and gather cache rows on axis 0).
"""

from typing import Any, ClassVar

import flax.linen as nn
import jax

from underrep_jax.models import layers

Array = jax.Array


class DecoderBlock(nn.Module):
  """Pre-norm residual layer; a family supplies `norm`, `attention`, `feed_forward`."""
  config: Any
  decode: bool = False
  deterministic: bool = True
  dtype: Any = jax.numpy.float32
  param_dtype: Any = jax.numpy.float32

  def norm(self, name: str) -> nn.Module:
    raise NotImplementedError

  def attention(self, h: Array, mask, positions, bias, cache_index) -> Array:
    raise NotImplementedError

  def feed_forward(self, h: Array) -> Array:
    raise NotImplementedError

  @property
  def dropout_rate(self) -> float:
    return self.config.dropout

  @property
  def kw(self) -> dict[str, Any]:
    return dict(dtype=self.dtype, param_dtype=self.param_dtype)

  @nn.compact
  def __call__(self, x, mask, positions, bias, cache_index):
    h = self.attention(self.norm("attention_norm")(x), mask, positions, bias, cache_index)
    x = x + nn.Dropout(self.dropout_rate)(h, deterministic=self.deterministic)
    h = self.feed_forward(self.norm("mlp_norm")(x))
    x = x + nn.Dropout(self.dropout_rate)(h, deterministic=self.deterministic)
    x = layers.constrain(x, layers.BLE)
    return (x, None) if self.config.scan_layers else x  # nn.scan's (carry, output)


class DecoderLM(nn.Module):
  """Causal LM: `apply(params, input_ids, ...) -> logits [B, T, V]`.

  A family sets `block_cls` and overrides `norm` and, where it differs, `embed_tokens`
  (embedding norm, scaling, sinusoids) and `attention_bias` (ALiBi).
  """
  config: Any
  dtype: Any = jax.numpy.float32
  param_dtype: Any = jax.numpy.float32

  is_encoder_decoder = False
  block_cls: ClassVar[type[DecoderBlock]] = DecoderBlock

  def norm(self, name: str) -> nn.Module:
    raise NotImplementedError

  def embed_tokens(self, embed: layers.Embed, input_ids: Array, positions: Array,
                   deterministic: bool) -> Array:
    """Token embeddings (plus whatever the family adds at the input)."""
    del positions, deterministic
    return embed(input_ids)

  def attention_bias(self, query_positions: Array, key_positions: Array) -> Array | None:
    """An additive [B, N, T, S] attention bias shared by all layers, or None."""
    del query_positions, key_positions
    return None

  @property
  def kw(self) -> dict[str, Any]:
    return dict(dtype=self.dtype, param_dtype=self.param_dtype)

  @nn.compact
  def __call__(self, input_ids: Array, attention_mask: Array | None = None,
               segment_ids: Array | None = None, positions: Array | None = None,
               causal_attention: Array | None = None, decode: bool = False,
               deterministic: bool = True) -> Array:
    cfg = self.config
    query_pos, key_pos, mask, cache_index = layers.SelfAttentionLayout(
        decode=decode, sliding_window=getattr(cfg, "sliding_window", None),
        kernel=cfg.attention in layers.KERNEL_ATTENTION, name="layout")(
            input_ids.shape, attention_mask, segment_ids, positions, causal_attention)
    bias = self.attention_bias(query_pos, key_pos)
    embed = layers.Embed(cfg.vocab_size, cfg.hidden_size, embedding_init=layers.normal_init(
        cfg.initializer_range), name="embed", **self.kw)
    x = layers.constrain(self.embed_tokens(embed, input_ids, query_pos, deterministic),
                         layers.BLE)
    block = self.block_cls
    if cfg.remat:  # inside a scan the loop already keeps XLA from merging the recompute
      block = nn.remat(block, prevent_cse=not cfg.scan_layers)
    if cfg.scan_layers:
      block = nn.scan(block, variable_axes={"params": 0, "cache": 1},
                      split_rngs={"params": True, "dropout": True},
                      in_axes=(nn.broadcast,) * 4,  # mask, positions, bias, cache_index
                      length=cfg.num_layers,
                      metadata_params={nn.PARTITION_NAME: "layers"})
      x, _ = block(cfg, decode=decode, deterministic=deterministic, name="layers", **self.kw)(
          x, mask, query_pos, bias, cache_index)
    else:
      for i in range(cfg.num_layers):
        x = block(cfg, decode=decode, deterministic=deterministic, name=f"layers_{i}",
                  **self.kw)(x, mask, query_pos, bias, cache_index)
    x = self.norm("final_norm")(x)
    if cfg.tie_word_embeddings:
      logits = embed.attend(x)
    else:
      logits = layers.Dense((cfg.vocab_size,), ("embed", "vocab"), use_bias=False,
                            kernel_init=layers.normal_init(cfg.initializer_range),
                            name="lm_head", **self.kw)(x)
    return layers.constrain(logits, layers.BLV)


def flops_per_token(*, layer_matmul_params: int, num_layers: int, hidden: int, vocab: int,
                    attention_width: int, seq_len: int) -> float:
  """Training FLOPs per token of a decoder-only LM, as MaxText counts them.

  Matches `calculate_tflops_training_per_device` in MaxText's maxtext_utils.py (dense,
  non-MLA branch): 3 x (forward) for forward + backward, where the forward is 2 FLOPs per
  weight of every matmul (q/k/v/out projections and MLP per layer, times num_layers) plus
  `embedding_flops` 2 d V, the output head alone: the input lookup is a gather, so an
  untied input embedding adds nothing, and a tied one counts once, as the head. Attention
  scores and values are 4 T N H per layer, halved for the causal mask as MaxText does
  (`causal_attention_flops = noncausal_attention_flops / 2`). Biases and norms are left
  out there too. No remat recompute (MFU, not hardware FLOPs).
  """
  matmul = num_layers * layer_matmul_params + hidden * vocab
  attention = num_layers * 4 * seq_len * attention_width / 2
  return 3.0 * (2.0 * matmul + attention)
