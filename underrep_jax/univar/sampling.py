"""Sampled generation (temperature, top-k, top-p) for asking an LLM, as the original did.

The original UniVaR answers were sampled (`do_sample=True, top_k=50, top_p=0.95`, up to
128 new tokens). The project's `evaluation.generation.Generator` is greedy or beam
search; `Sampler` has its interface (`generate(prompts, desc=)`) and runs the same
(prefill, step) functions, which the caller passes in (`generation.decoder_fns` or
`encoder_decoder_fns`: this package may not import `evaluation`).

Each row's random stream is a function of the seed and the prompt's tokens alone, not of
the batch it lands in or of the rows before it: a resumed run samples the same answer
for the same prompt as an uninterrupted one would.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from underrep_jax.models import batching

_NEG = -1e9
_HASH_MULTIPLIER = 2654435761  # Knuth's multiplicative hash constant


def filter_logits(logits: jax.Array, temperature: float, top_k: int, top_p: float) -> jax.Array:
  """[B, V] logits scaled by 1/temperature, with tokens outside the top k and outside
  the smallest set whose probability reaches top_p set to -inf-ish (0 / 1.0: off)."""
  logits = logits.astype(jnp.float32) / temperature
  if top_k and top_k < logits.shape[-1]:
    kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
    logits = jnp.where(logits < kth, _NEG, logits)
  if 0.0 < top_p < 1.0:
    order = jnp.argsort(-logits, axis=-1)
    sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs  # mass of the tokens ranked above
    drop_sorted = before >= top_p  # the top token is never dropped
    drop = jnp.zeros_like(drop_sorted).at[jnp.arange(logits.shape[0])[:, None], order].set(
        drop_sorted)
    logits = jnp.where(drop, _NEG, logits)
  return logits


def prompt_keys(seed: int, ids: jax.Array, mask: jax.Array) -> jax.Array:
  """One PRNG key per row from the seed and the row's real tokens (padding ignored)."""
  position = jnp.cumsum(mask, axis=1).astype(jnp.uint32)
  terms = (ids.astype(jnp.uint32) + jnp.uint32(1)) * (position * jnp.uint32(_HASH_MULTIPLIER)
                                                      + jnp.uint32(1))
  digest = jnp.sum(jnp.where(mask > 0, terms, jnp.uint32(0)), axis=1, dtype=jnp.uint32)
  base = jax.random.PRNGKey(seed)
  return jax.vmap(lambda d: jax.random.fold_in(base, d))(digest)


def sample_tokens(fns, params, prompt_ids, prompt_mask, *, max_new_tokens: int, eos_id: int,
                  pad_id: int, temperature: float, top_k: int, top_p: float, seed: int):
  """[B, max_new_tokens] sampled tokens (pad after EOS)."""
  prefill, step_fn = fns
  keys = prompt_keys(seed, prompt_ids, prompt_mask)
  state, logits = prefill(params, prompt_ids, prompt_mask)

  def step(carry, t):
    state, logits, finished = carry
    filtered = filter_logits(logits, temperature, top_k, top_p)
    step_keys = jax.vmap(lambda k: jax.random.fold_in(k, t))(keys)
    token = jax.vmap(jax.random.categorical)(step_keys, filtered).astype(jnp.int32)
    token = jnp.where(finished, pad_id, token)
    finished = finished | (token == eos_id)
    state, logits = step_fn(params, state, token)
    return (state, logits, finished), token

  carry = (state, logits, jnp.zeros((prompt_ids.shape[0],), bool))
  _, tokens = jax.lax.scan(step, carry, jnp.arange(max_new_tokens))
  return tokens.T


class Sampler:
  """Batched sampling with one loaded model; `generate` as `Generator.generate`."""

  def __init__(self, model, fns, *, batch_size: int = 8, max_new_tokens: int = 128,
               temperature: float = 1.0, top_k: int = 50, top_p: float = 0.95, seed: int = 0,
               max_prompt_tokens: int = 512, length_multiple: int = 32):
    if temperature <= 0:
      raise ValueError(f"temperature must be > 0 to sample, got {temperature}")
    self.model = model
    # Batches split over the data-parallel devices as the Generator's (`call_batch`);
    # a model without the topology split runs each batch whole.
    multiple = int(getattr(model, "batch_multiple", 1))
    self.batch_size = max(1, -(-int(batch_size) // multiple)) * multiple
    self.max_prompt_tokens = max_prompt_tokens
    self.length_multiple = length_multiple
    self.pad = model.ids.pad
    self.eos = -1 if model.ids.eos is None else model.ids.eos
    self._fn = jax.jit(functools.partial(
        sample_tokens, fns, max_new_tokens=max_new_tokens, eos_id=self.eos, pad_id=self.pad,
        temperature=float(temperature), top_k=int(top_k), top_p=float(top_p), seed=int(seed)))

  def generate_ids(self, prompt_tokens: list[list[int]], desc: str = "sampling"):
    out = [None] * len(prompt_tokens)
    for indices, ids, mask in batching.padded_batches(
        prompt_tokens, self.batch_size, self.length_multiple, self.max_prompt_tokens, self.pad,
        side="left", desc=desc):
      if hasattr(self.model, "call_batch"):
        tokens = np.asarray(self.model.call_batch(self._fn, (ids, mask)))
      else:
        tokens = np.asarray(self.model.call(self._fn, ids, mask))
      for i, row in zip(indices, tokens.tolist()):
        out[i] = row[:row.index(self.eos)] if self.eos in row else row
    return out

  def generate(self, prompts: list[str], desc: str = "sampling") -> list[str]:
    ids = self.generate_ids(self.model.tokenizer.encode_ids(prompts), desc)
    return [text.strip() for text in self.model.tokenizer.decode_ids(ids)]
