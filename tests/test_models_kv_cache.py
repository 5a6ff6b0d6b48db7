"""Incremental decoding with the KV cache equals full recomputation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from underrep_jax import models
from tolerances import float32_tol  # tests/tolerances.py
from underrep_jax.models import hf
from underrep_jax.models import testing

BATCH, PROMPT, TOTAL = 3, 5, 9


@pytest.mark.parametrize("name", ["bloom", "llama", "mistral", "xglm"])
def test_decoder_prompt_then_tokens_equals_full_pass(name, tmp_path):
  testing.save_tiny(name, tmp_path)
  model = hf.load(tmp_path)
  module, params = model.module, model.params
  # Left-padded prompts of different lengths, then generated tokens (all real).
  ids = testing.padded_batch([5, 5, 5], TOTAL, seed=3)[0]
  prompt_ids, prompt_mask = testing.padded_batch([5, 3, 1], PROMPT, left=True, seed=4)
  ids[:, :PROMPT] = prompt_ids
  mask = np.ones_like(ids)
  mask[:, :PROMPT] = prompt_mask

  full = module.apply({"params": params}, ids, attention_mask=mask)

  @jax.jit
  def step(cache, chunk, chunk_mask):
    return module.apply({"params": params, "cache": cache}, chunk, attention_mask=chunk_mask,
                        decode=True, mutable=["cache"])

  cache = models.init_cache(module, BATCH, TOTAL)
  chunks = [(0, PROMPT)] + [(t, t + 1) for t in range(PROMPT, TOTAL)]
  outputs = []
  for start, stop in chunks:
    out, variables = step(cache, ids[:, start:stop], mask[:, start:stop])
    cache = variables["cache"]
    outputs.append(out)
  incremental = np.asarray(jnp.concatenate(outputs, axis=1))
  real = mask.astype(bool)
  # One token at a time sums attention in another order: reductions of <= 256 (BLOOM's
  # MLP, 4 * 64), 2 layers and a head, relative to the logits (~0.6, floor 1): 5.7e-5; a
  # wrong cache slot or position attends to another token and moves them by >= 0.01.
  full = np.asarray(full)
  atol = float32_tol(256, depth=3, scale=max(1.0, np.abs(full[real]).max()))
  assert np.abs(incremental[real] - full[real]).max() <= atol


def test_mt5_decoder_token_by_token_equals_full_pass(tmp_path):
  testing.save_tiny("mt5", tmp_path)
  model = hf.load(tmp_path)
  module, params = model.module, model.params
  encoder_ids, encoder_mask = testing.padded_batch([6, 4, 2], 6, seed=5)
  decoder_ids = testing.padded_batch([TOTAL] * BATCH, TOTAL, seed=6)[0]

  full = module.apply({"params": params}, encoder_ids, decoder_ids, encoder_mask=encoder_mask)

  encoded = module.apply({"params": params}, encoder_ids, encoder_mask=encoder_mask,
                         method=module.encode)
  @jax.jit
  def step(cache, token):
    return module.apply({"params": params, "cache": cache}, encoded, encoder_ids, token,
                        encoder_mask=encoder_mask, decode=True, mutable=["cache"],
                        method=module.decode)

  cache = models.init_cache(module, BATCH, TOTAL)
  outputs = []
  for t in range(TOTAL):
    out, variables = step(cache, decoder_ids[:, t:t + 1])
    cache = variables["cache"]
    outputs.append(out)
  incremental = np.asarray(jnp.concatenate(outputs, axis=1))
  # As above: mT5's reductions of <= 128 (vocab, MLP), 2 + 2 layers, logits of ~45: 3e-3.
  full = np.asarray(full)
  atol = float32_tol(testing.VOCAB, depth=5, scale=max(1.0, np.abs(full).max()))
  assert np.abs(incremental - full).max() <= atol
  assert int(cache["decoder"]["layout"]["cache_index"]) == TOTAL
