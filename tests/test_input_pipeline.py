"""Training input: deterministic resume, per-host shards, loss conventions."""

import numpy as np
import pytest

import tasks
from underrep_jax.data import input_pipeline as ip


@pytest.fixture(scope="module")
def mixture():
  return tasks.instructalign.alignment_mixture("pair_xss", "nusaxmt", "ind", ["sun"])


def _take(it, n):
  return [next(it) for _ in range(n)]


def test_resume_continues_the_same_stream(mixture):
  config = ip.InputConfig(mixture, inputs_length=64, targets_length=32, global_batch_size=4)
  full = _take(ip.batches(config), 5)
  resumed = _take(ip.batches(config, start_step=3), 2)
  for a, b in zip(full[3:], resumed):
    assert a.keys() == b.keys()
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  assert not np.array_equal(full[0]["decoder_target_tokens"], full[1]["decoder_target_tokens"])


def test_hosts_read_disjoint_halves(mixture):
  # Byte tokens: long enough that the sentences, not only the prompt, are in the batch.
  config = ip.InputConfig(mixture, inputs_length=400, targets_length=200, global_batch_size=4,
                          pack=False)
  one = next(ip.batches(config, process_index=0, process_count=2))
  two = next(ip.batches(config, process_index=1, process_count=2))
  assert one["decoder_target_tokens"].shape == (2, 600)
  assert not np.array_equal(one["decoder_target_tokens"], two["decoder_target_tokens"])
  with pytest.raises(ValueError, match="divisible"):
    next(ip.batches(ip.InputConfig(mixture, global_batch_size=3), process_count=2))


def test_loss_on_all_covers_the_prompt(mixture):
  kw = dict(inputs_length=64, targets_length=32, global_batch_size=4, pack=False)
  targets_only = next(ip.batches(ip.InputConfig(mixture, loss_on="targets", **kw)))
  everything = next(ip.batches(ip.InputConfig(mixture, loss_on="all", **kw)))
  np.testing.assert_array_equal(targets_only["decoder_target_tokens"],
                                everything["decoder_target_tokens"])
  nonpad = everything["decoder_target_tokens"] > 0
  np.testing.assert_array_equal(everything["decoder_loss_weights"] > 0, nonpad)
  assert targets_only["decoder_loss_weights"].sum() < everything["decoder_loss_weights"].sum()


def test_encoder_decoder_features(mixture):
  config = ip.InputConfig(mixture, inputs_length=64, targets_length=32, global_batch_size=2,
                          architecture="encoder_decoder")
  batch = next(ip.batches(config))
  assert batch["encoder_input_tokens"].shape == (2, 64)
  assert batch["decoder_target_tokens"].shape == (2, 32)
  with pytest.raises(ValueError, match="architecture"):
    ip.feature_converter(ip.InputConfig(mixture, architecture="rnn"))
