"""Packed sequences, the prefix-LM mask, rematerialisation and dropout."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tolerances import float32_tol  # tests/tolerances.py
from underrep_jax.models import hf
from underrep_jax.models import testing

# Tiny models (models.testing): reductions of <= 256 (BLOOM's MLP, 4 * 64), 2 layers and a
# head, or 2 + 2 layers and a head for mT5.
TINY_REDUCTION, TINY_DEPTH, TINY_MT5_DEPTH = 256, 3, 5


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
  cache = {}

  def load(name, **kwargs):
    if name not in cache:
      directory = tmp_path_factory.mktemp(name)
      testing.save_tiny(name, directory)
      cache[name] = directory
    return hf.load(cache[name], **kwargs)

  return load


def _packed(first, second, length):
  ids = np.zeros((1, length), np.int32)
  ids[0, :len(first)] = first
  ids[0, len(first):len(first) + len(second)] = second
  segments = np.zeros_like(ids)
  segments[0, :len(first)] = 1
  segments[0, len(first):len(first) + len(second)] = 2
  positions = np.zeros_like(ids)
  positions[0, :len(first)] = np.arange(len(first))
  positions[0, len(first):len(first) + len(second)] = np.arange(len(second))
  return ids, segments, positions


def _jitted_apply(model, **static):
  """module.apply on model.params, jitted; array arguments only (keywords allowed)."""
  return jax.jit(lambda *args, **kwargs: model.module.apply(
      {"params": model.params}, *args, **kwargs, **static))


@pytest.mark.parametrize("name", ["bloom", "llama", "xglm", "bert"])
def test_packed_row_equals_separate_sequences(loaded, name):
  model = loaded(name)
  apply = _jitted_apply(model)
  hidden = (lambda out: np.asarray(out[0])) if name == "bert" else np.asarray
  first, second = np.arange(10, 15), np.arange(40, 43)
  ids, segments, positions = _packed(first, second, 10)
  ids = np.where(segments > 0, ids, 1 if name == "xglm" else 0)
  packed = hidden(apply(ids, segment_ids=segments, positions=positions))
  alone = [hidden(apply(seq[None]))[0] for seq in (first, second)]
  # Another mask and layout: rounding of the output's size (0.5-3.5); a packed example
  # that sees its neighbour moves by >= 0.014.
  for got, want in ((packed[0, :5], alone[0]), (packed[0, 5:8], alone[1])):
    atol = float32_tol(TINY_REDUCTION, TINY_DEPTH, scale=max(1.0, np.abs(want).max()))
    np.testing.assert_allclose(got, want, atol=atol, rtol=0)


def test_packed_encoder_decoder_equals_separate_pairs(loaded):
  model = loaded("mt5")
  apply = lambda *a, **k: np.asarray(_jitted_apply(model)(*a, **k))
  enc_a, enc_b = np.arange(5, 11), np.arange(20, 24)
  dec_a, dec_b = np.arange(30, 34), np.arange(50, 53)
  enc, enc_seg, enc_pos = _packed(enc_a, enc_b, 12)
  dec, dec_seg, dec_pos = _packed(dec_a, dec_b, 8)
  packed = apply(enc, dec, encoder_segment_ids=enc_seg, encoder_positions=enc_pos,
                 decoder_segment_ids=dec_seg, decoder_positions=dec_pos)
  # mT5 logits reach ~40: float32_tol(256, 5, 40) = 3.8e-3; a leak across the packed
  # encoder inputs moves them by ~15.
  for got, want in ((packed[0, :4], apply(enc_a[None], dec_a[None])[0]),
                    (packed[0, 4:7], apply(enc_b[None], dec_b[None])[0])):
    atol = float32_tol(TINY_REDUCTION, TINY_MT5_DEPTH, scale=max(1.0, np.abs(want).max()))
    np.testing.assert_allclose(got, want, atol=atol, rtol=0)


def test_prefix_lm_mask_is_bidirectional_only_inside_the_prefix(loaded):
  model = loaded("llama")
  prefix = np.array([[1, 1, 1, 0, 0, 0]], np.int32)
  ids = np.array([[5, 6, 7, 8, 9, 10]], np.int32)
  apply = _jitted_apply(model)
  run = lambda x: np.asarray(apply(x, causal_attention=prefix))
  base = run(ids)
  in_prefix, after_prefix = ids.copy(), ids.copy()
  in_prefix[0, 2] = 60
  after_prefix[0, 3] = 60
  assert np.abs(run(in_prefix)[0, 0] - base[0, 0]).max() > 1e-4   # sees a later prefix token
  # Exact on purpose: masked positions add exact zeros, so any leak shows.
  np.testing.assert_array_equal(run(after_prefix)[0, :3], base[0, :3])  # never a target


def test_remat_gives_the_same_logits_and_gradients(loaded):
  plain, remat = loaded("bloom"), loaded("bloom", remat=True)
  assert remat.config.remat and not plain.config.remat
  ids, mask = testing.padded_batch([6, 4], 6)

  def loss(module, params):
    return jnp.sum(module.apply({"params": params}, ids, attention_mask=mask) ** 2)

  value, grads = jax.jit(jax.value_and_grad(lambda p: loss(plain.module, p)))(plain.params)
  value_remat, grads_remat = jax.jit(jax.value_and_grad(lambda p: loss(remat.module, p)))(
      plain.params)
  # Remat is another XLA program: the loss sums 2 * 6 * 128 squared logits, and each
  # gradient leaf runs the forward and backward (depth 6), relative to its largest entry.
  np.testing.assert_allclose(value_remat, value, rtol=float32_tol(2 * 6 * 128, TINY_DEPTH))
  for a, b in zip(jax.tree.leaves(grads_remat), jax.tree.leaves(grads)):
    np.testing.assert_allclose(a, b, rtol=0, atol=float32_tol(
        TINY_REDUCTION, 2 * TINY_DEPTH, scale=np.abs(b).max()))


def test_dropout_only_when_not_deterministic(loaded):
  model = loaded("llama")
  noisy_model = dataclasses.replace(
      model, module=model.module.clone(config=dataclasses.replace(model.config, dropout=0.5)))
  ids = np.array([[5, 6, 7, 8]], np.int32)
  quiet = np.asarray(_jitted_apply(noisy_model)(ids))
  # Logits ~0.4; dropout left on would move them by > 1e-3 (checked below).
  expected = np.asarray(model.logits(ids))
  np.testing.assert_allclose(quiet, expected, rtol=0, atol=float32_tol(
      TINY_REDUCTION, TINY_DEPTH, scale=np.abs(expected).max()))
  noisy = np.asarray(_jitted_apply(noisy_model, deterministic=False)(
      ids, rngs={"dropout": jax.random.PRNGKey(1)}))
  assert np.abs(noisy - quiet).max() > 1e-3
