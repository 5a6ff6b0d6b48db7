"""Token cross-entropy, loss weights and model adapters on packed SeqIO-style batches."""

import jax
import numpy as np
import pytest

import toy_models
from tolerances import float32_tol  # tests/tolerances.py
from underrep_jax.train import losses


def test_cross_entropy_matches_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 3, 5)).astype(np.float32)
  targets = rng.integers(0, 5, size=(2, 3))
  weights = np.array([[1, 1, 0], [0, 1, 1]], np.float32)
  loss_sum, weight, metrics = losses.cross_entropy(logits, targets, weights, z_loss=1e-2)
  log_z = np.log(np.exp(logits).sum(-1))
  nll = log_z - np.take_along_axis(logits, targets[..., None], -1)[..., 0]
  # A 5-way log-sum-exp, then a sum over 6 tokens: float32_tol(6, depth=2) = 5.8e-6
  # relative; the z-loss term checked is 2% of the loss.
  rtol = float32_tol(6, depth=2)
  np.testing.assert_allclose(metrics["nll"], (nll * weights).sum(), rtol=rtol)
  np.testing.assert_allclose(metrics["z_loss"], (1e-2 * log_z**2 * weights).sum(), rtol=rtol)
  np.testing.assert_allclose(loss_sum, ((nll + 1e-2 * log_z**2) * weights).sum(), rtol=rtol)
  assert float(weight) == 4.0
  correct = (logits.argmax(-1) == targets) * weights
  assert float(metrics["accuracy"]) == correct.sum()



@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cross_entropy_gradient_equals_autodiff_of_the_float32_formula(dtype):
  """`token_nll`'s own backward (it keeps the logits in their dtype, not a float32 copy)
  gives autodiff's gradient of the float32 formula, with the z-loss; bf16 logits get a
  bf16 gradient, as the cast's transpose gave them before."""
  rng = np.random.default_rng(1)
  logits = jax.numpy.asarray(rng.normal(size=(2, 3, 50)) * 3, dtype)
  targets = rng.integers(0, 50, size=(2, 3))
  weights = np.array([[1, 1, 0], [0, 1, 1]], np.float32)

  def formula(x):
    x = x.astype(np.float32)
    log_z = jax.nn.logsumexp(x, axis=-1)
    nll = log_z - np.take_along_axis(x, targets[..., None], -1)[..., 0]
    return ((nll + 1e-2 * log_z**2) * weights).sum()

  ours = jax.grad(lambda x: losses.cross_entropy(x, targets, weights, z_loss=1e-2)[0])(logits)
  expected = jax.grad(formula)(logits)
  assert ours.dtype == logits.dtype
  # float32: a 50-way softmax, rounded twice; bfloat16: both round to bf16 at the end.
  tol = float32_tol(50, depth=2) if dtype == "float32" else 2.0 ** -8
  np.testing.assert_allclose(np.asarray(ours, np.float32), np.asarray(expected, np.float32),
                             rtol=tol, atol=tol * float(np.abs(np.asarray(expected, np.float32)).max()))


def test_loss_weights_targets_or_whole_sequence():
  batch = {"decoder_target_tokens": np.array([[5, 6, 7, 0]]),
           "decoder_loss_weights": np.array([[0, 0, 1, 0]])}
  np.testing.assert_array_equal(losses.loss_weights(batch, "targets"), [[0, 0, 1, 0]])
  np.testing.assert_array_equal(losses.loss_weights(batch, "all"), [[1, 1, 1, 0]])
  with pytest.raises(ValueError, match="loss_on"):
    losses.token_loss(lambda *a: None, loss_on="inputs")


@pytest.fixture(scope="module")
def decoder():
  model = toy_models.ToyDecoder(layers=1)
  tokens = np.zeros((1, 16), np.int32)
  return model, toy_models.numpy_params(model, tokens)


def _unpack(batch, prefix, length):
  """Each example of a packed batch alone in a row, as SeqIO packs a lone example."""
  seg = batch[f"{prefix}_segment_ids"]
  rows, where = {}, []
  for r in range(seg.shape[0]):
    for s in range(1, seg[r].max() + 1):
      keep = seg[r] == s
      where.append((r, keep))
      for k, v in batch.items():
        if k.startswith(prefix):
          row = np.zeros(length, v.dtype)
          row[:keep.sum()] = 1 if k.endswith("segment_ids") else v[r][keep]
          rows.setdefault(k, []).append(row)
  return {k: np.stack(v) for k, v in rows.items()}, where


def _nll(logits, targets):
  logits = np.asarray(logits, np.float64)
  log_z = np.log(np.exp(logits).sum(-1))
  return log_z - np.take_along_axis(logits, targets[..., None], -1)[..., 0]


def _check_tokenwise(adapter, params, packed, singles, where):
  """Per-token NLL of each packed example equals that of the example run alone.

  Both go through the model as one batch (one compilation): the packed rows first.
  """
  n = len(next(iter(packed.values())))
  both = {k: np.concatenate([packed[k], singles[k]]) for k in packed}
  logits = jax.jit(adapter)(params, both, jax.random.PRNGKey(0))
  nll = _nll(logits, both["decoder_target_tokens"])
  # Toy models: reductions of <= 64 (vocab, MLP), <= 3 layers, NLL ~ log(64) = 4.2, so
  # float32_tol(64, depth=3, scale=5) = 1.4e-4; attention leaking across packed
  # examples moves the NLL by 7.7e-3.
  atol = float32_tol(toy_models.VOCAB, depth=3, scale=5.0)
  for i, (r, keep) in enumerate(where):
    np.testing.assert_allclose(nll[r][keep], nll[n + i][:keep.sum()], rtol=0, atol=atol)


def test_decoder_packed_equals_unpacked(decoder):
  model, params = decoder
  batch = toy_models.decoder_batch(0, 2, length=16)
  singles, where = _unpack(batch, "decoder", 16)
  _check_tokenwise(losses.decoder_only_adapter(model), params, batch, singles, where)
  # Both count the same target tokens: per row 5 targets, then 3 before the padding.
  assert batch["decoder_loss_weights"].sum() == singles["decoder_loss_weights"].sum() == 2 * (5 + 3)


def test_prefix_lm_mask_reaches_the_model(decoder):
  model, params = decoder
  batch = toy_models.decoder_batch(0, 2, packed=False)
  adapter = jax.jit(losses.decoder_only_adapter(model, prefix_lm=True))
  causal = dict(batch, decoder_causal_attention=np.zeros((2, 16), np.int32))
  prefix_mask = np.broadcast_to(np.arange(16) < 4, (2, 16)).astype(np.int32)
  prefix = dict(batch, decoder_causal_attention=prefix_mask)
  causal_logits = adapter(params, causal, jax.random.PRNGKey(0))
  prefix_logits = adapter(params, prefix, jax.random.PRNGKey(0))
  assert not np.allclose(causal_logits[:, :3], prefix_logits[:, :3])  # the prefix sees ahead
  # Logits ~0.4 after reductions of <= 64 and 2 layers (~8e-6); the prefix moves the
  # positions it reaches by ~0.04.
  np.testing.assert_allclose(causal_logits[:, 4:], prefix_logits[:, 4:], rtol=0,
                             atol=float32_tol(64, depth=2, scale=np.abs(causal_logits).max()))
  # Without prefix_lm (the default) the feature is ignored: causal, as the model is used.
  default_logits = jax.jit(losses.decoder_only_adapter(model))(params, prefix,
                                                               jax.random.PRNGKey(0))
  np.testing.assert_array_equal(default_logits, causal_logits)


def _encdec_batch():
  """Two rows, each packing two (input, target) pairs, EncDecFeatureConverter-style."""
  rng = np.random.default_rng(1)
  def packed(lengths, total):
    tokens = np.zeros(total, np.int32)
    seg = np.zeros(total, np.int32)
    pos = np.zeros(total, np.int32)
    start = 0
    for i, n in enumerate(lengths):
      tokens[start:start + n] = rng.integers(2, toy_models.VOCAB, n)
      seg[start:start + n] = i + 1
      pos[start:start + n] = np.arange(n)
      start += n
    return tokens, seg, pos
  rows = {}
  for enc, dec in [((5, 6), (4, 3)), ((7, 4), (2, 5))]:
    e, es, ep = packed(enc, 14)
    t, ds, dp = packed(dec, 10)
    inputs = np.where(dp == 0, 0, np.roll(t, 1))  # shifted right within each segment
    for k, v in dict(encoder_input_tokens=e, encoder_segment_ids=es, encoder_positions=ep,
                     decoder_target_tokens=t, decoder_input_tokens=inputs,
                     decoder_segment_ids=ds, decoder_positions=dp,
                     decoder_loss_weights=(t > 0).astype(np.int32)).items():
      rows.setdefault(k, []).append(v)
  return {k: np.stack(v) for k, v in rows.items()}


def test_encoder_decoder_packed_equals_unpacked():
  model = toy_models.ToyEncoderDecoder()
  batch = _encdec_batch()
  params = toy_models.numpy_params(model, batch["encoder_input_tokens"],
                                   batch["decoder_input_tokens"])
  singles, where = _unpack(batch, "decoder", 10)
  singles.update(_unpack(batch, "encoder", 14)[0])
  _check_tokenwise(losses.encoder_decoder_adapter(model), params, batch, singles, where)
