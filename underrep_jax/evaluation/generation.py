"""Greedy and beam-search generation with the KV cache, decoder-only or encoder-decoder.

Decoder-only: the prompt is written into the cache in one call; each new token is one
more cached call. Encoder-decoder (mT0): the prompt is encoded once and the decoder runs
token by token from its start token with its own cache. Everything runs in one jitted function with static shapes (batch, prompt bucket,
`max_new_tokens`, beams), so a whole MT evaluation compiles once per prompt bucket.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from underrep_jax import models
from underrep_jax.evaluation import model_loading
from underrep_jax.models import batching

_NEG = -1e9


def _gather_rows(tree, rows):
  return jax.tree.map(lambda x: x[rows] if x.ndim else x, tree)


def _repeat_rows(tree, times: int):
  return jax.tree.map(lambda x: jnp.repeat(x, times, axis=0) if x.ndim else x, tree)


def decoder_fns(module, max_new_tokens: int):
  """(prefill, step) for decoder-only models: the prompt, then one token per call."""
  def prefill(params, ids, mask):
    cache = models.init_cache(module, ids.shape[0], ids.shape[1] + max_new_tokens)
    logits, state = module.apply({"params": params, "cache": cache}, ids, attention_mask=mask,
                                 decode=True, mutable=["cache"])
    return {"cache": state["cache"]}, logits[:, -1]

  def step(params, state, token):
    logits, new = module.apply({"params": params, "cache": state["cache"]}, token[:, None],
                               decode=True, mutable=["cache"])
    return {"cache": new["cache"]}, logits[:, -1]

  return prefill, step


def encoder_decoder_fns(module, max_new_tokens: int, start_id: int):
  """(prefill, step) for encoder-decoders: encode once, decode from the start token."""
  def step(params, state, token):
    logits, new = module.apply({"params": params, "cache": state["cache"]}, state["encoded"],
                               state["ids"], token[:, None], encoder_mask=state["mask"],
                               decode=True, mutable=["cache"], method=module.decode)
    return {**state, "cache": new["cache"]}, logits[:, -1]

  def prefill(params, ids, mask):
    encoded = module.apply({"params": params}, ids, encoder_mask=mask, method=module.encode)
    cache = models.init_cache(module, ids.shape[0], max_new_tokens + 1)
    state = {"cache": cache, "encoded": encoded, "ids": ids, "mask": mask}
    return step(params, state, jnp.full((ids.shape[0],), start_id, jnp.int32))

  return prefill, step


def _beam_search(fns, params, prompt_ids, prompt_mask, *, max_new_tokens: int,
                 num_beams: int, eos_id: int, pad_id: int, length_penalty: float):
  """[B, max_new_tokens] tokens of each row's best beam (pad after EOS)."""
  prefill, step_fn = fns
  batch, k = prompt_ids.shape[0], num_beams
  state, logits = prefill(params, prompt_ids, prompt_mask)
  state = _repeat_rows(state, k)
  logits = jnp.repeat(logits, k, axis=0).reshape(batch, k, -1).astype(jnp.float32)
  vocab = logits.shape[-1]
  # Only beam 0 is live at the start, so the first expansion does not pick duplicates.
  scores = jnp.tile(jnp.array([0.0] + [_NEG] * (k - 1), jnp.float32), (batch, 1))
  seqs = jnp.full((batch, k, max_new_tokens), pad_id, jnp.int32)
  finished = jnp.zeros((batch, k), bool)
  lengths = jnp.zeros((batch, k), jnp.int32)
  pad_only = jnp.full((vocab,), _NEG, jnp.float32).at[pad_id].set(0.0)

  def step(carry, t):
    state, logits, scores, seqs, finished, lengths = carry
    logp = jax.nn.log_softmax(logits, axis=-1)
    logp = jnp.where(finished[..., None], pad_only, logp)
    flat = (scores[..., None] + logp).reshape(batch, k * vocab)
    scores, index = jax.lax.top_k(flat, k)
    beam, token = index // vocab, (index % vocab).astype(jnp.int32)
    seqs = jnp.take_along_axis(seqs, beam[..., None], axis=1).at[:, :, t].set(token)
    was_finished = jnp.take_along_axis(finished, beam, axis=1)
    lengths = jnp.take_along_axis(lengths, beam, axis=1) + (~was_finished).astype(jnp.int32)
    finished = was_finished | (token == eos_id)
    state = _gather_rows(state, (jnp.arange(batch)[:, None] * k + beam).reshape(-1))
    state, logits = step_fn(params, state, token.reshape(-1))
    return (state, logits.reshape(batch, k, -1).astype(jnp.float32), scores, seqs, finished,
            lengths), None

  carry = (state, logits, scores, seqs, finished, lengths)
  (_, _, scores, seqs, _, lengths), _ = jax.lax.scan(step, carry, jnp.arange(max_new_tokens))
  normalized = scores / jnp.maximum(lengths, 1).astype(jnp.float32) ** length_penalty
  best = jnp.argmax(normalized, axis=1)
  return jnp.take_along_axis(seqs, best[:, None, None], axis=1)[:, 0]


def _greedy(fns, params, prompt_ids, prompt_mask, *, max_new_tokens: int, eos_id: int,
            pad_id: int):
  """[B, max_new_tokens] argmax tokens (pad after EOS)."""
  prefill, step_fn = fns
  state, logits = prefill(params, prompt_ids, prompt_mask)

  def step(carry, _):
    state, logits, finished = carry
    token = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    token = jnp.where(finished, pad_id, token)
    finished = finished | (token == eos_id)
    state, logits = step_fn(params, state, token)
    return (state, logits, finished), token

  carry = (state, logits, jnp.zeros((prompt_ids.shape[0],), bool))
  _, tokens = jax.lax.scan(step, carry, None, length=max_new_tokens)
  return tokens.T


def generation_fn(module, kind: str, *, max_new_tokens: int, num_beams: int = 1,
                  greedy: bool = True, length_penalty: float = 1.0, eos_id: int = -1,
                  pad_id: int = 0, start_id: int = 0):
  """`fn(params, prompt_ids, prompt_mask)` -> generated ids: what `Generator` jits (and
  `plan` compiles for a target)."""
  if kind == "decoder":
    fns = decoder_fns(module, max_new_tokens)
  elif kind == "encoder_decoder":
    fns = encoder_decoder_fns(module, max_new_tokens, start_id)
  else:
    raise TypeError(f"{kind} models cannot generate")
  common = dict(max_new_tokens=max_new_tokens, eos_id=eos_id, pad_id=pad_id)
  if greedy:
    return functools.partial(_greedy, fns, **common)
  return functools.partial(_beam_search, fns, num_beams=num_beams,
                           length_penalty=length_penalty, **common)


def lower(module, kind: str, topology, *, batch_size: int, prompt_length: int, **options):
  """The generation of one batch lowered with abstract shapes on `topology` (parameters
  in their logical shardings, the batch over the data-parallel devices); `options` as
  `generation_fn`'s."""
  from underrep_jax.models import initialize
  params = initialize.abstract_params(module, topology)
  ids = jax.ShapeDtypeStruct((batch_size, prompt_length), jnp.int32,
                             sharding=topology.batch_sharding(2))
  with topology.context():
    return jax.jit(generation_fn(module, kind, **options)).lower(params, ids, ids)


class Generator:
  """Batched generation with one loaded decoder-only model."""

  def __init__(self, model, batch_size: int = 8, max_new_tokens: int = 64, num_beams: int = 1,
               greedy: bool = True, length_penalty: float = 1.0, max_prompt_tokens: int = 512,
               length_multiple: int = 32):
    if model.kind not in ("decoder", "encoder_decoder"):
      raise TypeError(f"generation needs a decoder-only or encoder-decoder model; "
                      f"{model.family} is an {model.kind}")
    if num_beams < 1:
      raise ValueError(f"num_beams must be >= 1, got {num_beams}")
    self.model = model
    self.batch_size = batching.round_up(batch_size, model.batch_multiple)
    self.max_prompt_tokens = max_prompt_tokens
    self.length_multiple = length_multiple
    self.pad = model.ids.pad
    self.eos = -1 if model.ids.eos is None else model.ids.eos  # -1: never stops early
    start = model.ids.decoder_start
    self._fn = jax.jit(generation_fn(
        model.module, model.kind, max_new_tokens=max_new_tokens, num_beams=num_beams,
        greedy=greedy, length_penalty=length_penalty, eos_id=self.eos, pad_id=self.pad,
        start_id=self.pad if start is None else start))

  def generate_ids(self, prompt_tokens: list[list[int]], desc: str = "generating"):
    """Generated ids per prompt, cut at (and without) EOS, in the prompts' order.

    Prompts are batched in order of length, so a batch pads little; on a topology each
    batch is split over the data-parallel devices and hosts, as in `scoring.Scorer`.
    """
    model_loading.check_token_ids(self.model, {"prompt": prompt_tokens}, desc)
    out = [None] * len(prompt_tokens)
    for indices, ids, mask in batching.padded_batches(
        prompt_tokens, self.batch_size, self.length_multiple, self.max_prompt_tokens, self.pad,
        side="left", desc=desc):
      tokens = self.model.call_batch(self._fn, (ids, mask))
      for i, row in zip(indices, tokens.tolist()):
        out[i] = row[:row.index(self.eos)] if self.eos in row else row
    return out

  def generate(self, prompts: list[str], desc: str = "generating") -> list[str]:
    ids = self.generate_ids(model_loading.encode(self.model, prompts), desc)
    return [text.strip() for text in self.model.tokenizer.decode_ids(ids)]
