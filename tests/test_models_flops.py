"""Training FLOPs per token of the decoder-only families, counted as MaxText counts them.

6 x (weights that take part in a matmul) + the causal attention term 6 L T N H; the input
embedding is a gather, so an untied model's input table adds nothing.
"""

from flax import linen as nn
import jax
import numpy as np
import pytest

from underrep_jax import models
from underrep_jax.models import bert
from underrep_jax.models import bloom
from underrep_jax.models import llama
from underrep_jax.models import registry
from underrep_jax.models import xglm
from underrep_jax.train import metrics

SEQ = 32


def _param_sizes(module) -> dict[str, int]:
  shapes = jax.eval_shape(models.make_init_fn(module), jax.random.PRNGKey(0))
  flat = jax.tree_util.tree_leaves_with_path(nn.unbox(shapes))
  return {"/".join(k.key for k in path): int(np.prod(leaf.shape)) for path, leaf in flat}


def test_untied_llama_counts_matmul_weights_and_not_the_input_embedding():
  cfg = llama.LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=48, num_layers=3,
                          num_heads=4, num_kv_heads=2, head_dim=8, qkv_bias=True)
  d, v, i, n, k, h, layers = 32, 100, 48, 4, 2, 8, 3
  per_layer = d * n * h + 2 * d * k * h + n * h * d + 3 * d * i  # q, k, v, o, gate/up/down
  head = d * v                                                   # lm_head; embed is a gather
  attention = 6 * layers * SEQ * n * h                           # 3 x (4 T N H / 2), causal
  expected = 6 * (layers * per_layer + head) + attention
  assert cfg.flops_per_token(SEQ) == expected

  module = registry.build("llama", cfg)
  sizes = _param_sizes(module)
  kernels = sum(s for name, s in sizes.items() if name.endswith("/kernel"))
  assert 6 * kernels + attention == expected  # the config formula agrees with the shapes
  count, flops = metrics.module_flops_per_token(module, models.make_init_fn(module), SEQ)
  assert count == sum(sizes.values()) and flops == expected
  # The old 6 N + 12 L d T counted the [V, d] input table (and biases, norms) as matmuls.
  assert metrics.transformer_flops_per_token(count, layers, d, SEQ) > flops + 6 * d * v


def test_tying_the_head_does_not_change_the_count():
  untied = llama.LlamaConfig(vocab_size=100, tie_word_embeddings=False)
  tied = llama.LlamaConfig(vocab_size=100, tie_word_embeddings=True)
  assert untied.flops_per_token(SEQ) == tied.flops_per_token(SEQ)  # one head matmul either way


def test_tied_bloom_counts_the_embedding_once_as_the_head():
  cfg = bloom.BloomConfig(vocab_size=100, hidden_size=32, num_layers=2, num_heads=4)
  d, v, layers = 32, 100, 2
  per_layer = 3 * d * d + d * d + 2 * 4 * d * d  # fused qkv, dense; h_to_4h, 4h_to_h
  expected = 6 * (layers * per_layer + d * v) + 6 * layers * SEQ * d
  assert cfg.flops_per_token(SEQ) == expected

  module = registry.build("bloom", cfg)
  sizes = _param_sizes(module)
  kernels = sum(s for name, s in sizes.items() if name.endswith("/kernel"))
  assert 6 * (kernels + sizes["embed/embedding"]) + 6 * layers * SEQ * d == expected
  _, flops = metrics.module_flops_per_token(module, models.make_init_fn(module), SEQ)
  assert flops == expected


@pytest.mark.parametrize("tied", [True, False])
def test_xglm_count_matches_its_kernels(tied):
  cfg = xglm.XGLMConfig(vocab_size=100, hidden_size=32, ffn_dim=48, num_layers=2,
                        num_heads=4, tie_word_embeddings=tied)
  sizes = _param_sizes(registry.build("xglm", cfg))
  head = sizes["embed/embedding"] if tied else 0  # untied: lm_head/kernel is a kernel
  kernels = sum(s for name, s in sizes.items() if name.endswith("/kernel"))
  assert cfg.flops_per_token(SEQ) == 6 * (kernels + head) + 6 * 2 * SEQ * 32


def test_bert_counts_its_layer_kernels_and_unmasked_attention():
  """An encoder: every layer kernel once, attention 4 T d per layer (no causal halving);
  the word, position and token-type tables are gathers, the pooler is left out."""
  cfg = bert.BertConfig(vocab_size=100, hidden_size=32, intermediate_size=48, num_layers=2,
                        num_heads=4, max_position_embeddings=64)
  module = registry.build("bert", cfg)
  sizes = _param_sizes(module)
  layer_kernels = sum(s for name, s in sizes.items()
                      if name.startswith("layers_") and name.endswith("/kernel"))
  expected = 6 * layer_kernels + 12 * 2 * SEQ * 32
  assert cfg.flops_per_token(SEQ) == expected
  _, flops = metrics.module_flops_per_token(module, models.make_init_fn(module), SEQ)
  assert flops == expected
