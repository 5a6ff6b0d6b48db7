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


def _converted(examples, **config):
  """Token examples through the converter of an InputConfig (as the pipeline applies it)."""
  import tensorflow as tf
  config = ip.InputConfig("unused", **config)
  ds = tf.data.Dataset.from_generator(
      lambda: ({"inputs": np.asarray(i, np.int32), "targets": np.asarray(t, np.int32)}
               for i, t in examples),
      output_signature={"inputs": tf.TensorSpec([None], tf.int32),
                        "targets": tf.TensorSpec([None], tf.int32)})
  return list(ip.feature_converter(config)(ds, ip.task_feature_lengths(config))
              .as_numpy_iterator())


def test_shared_budget_cuts_prompt_and_answer_together_on_the_right():
  eos = 1
  fits = ([5, 6, 7], [8, 9, eos])
  long_answer = ([5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, eos])
  long_prompt = ([20 + i for i in range(10)], [8, eos])  # tasks trim each side to 10
  rows = _converted([fits, long_answer, long_prompt], max_length=10, pack=False,
                    loss_on="targets")
  targets = [r["decoder_target_tokens"] for r in rows]
  assert all(t.shape == (10,) for t in targets)
  np.testing.assert_array_equal(targets[0], [5, 6, 7, 8, 9, eos, 0, 0, 0, 0])  # EOS kept
  np.testing.assert_array_equal(targets[1], [5, 6, 7, 8, 9, 10, 11, 12, 13, 14])  # no EOS
  np.testing.assert_array_equal(targets[2], list(range(20, 30)))  # the answer is gone
  np.testing.assert_array_equal(rows[1]["decoder_loss_weights"], [0] * 6 + [1] * 4)
  assert rows[2]["decoder_loss_weights"].sum() == 0
  assert ip.task_feature_lengths(ip.InputConfig("unused", max_length=10)) == {
      "inputs": 10, "targets": 10}


def test_shared_budget_packs_into_rows_of_the_budget():
  rows = _converted([([5, 6], [7, 1]), ([8, 9, 10], [11, 1]), ([12], [13, 1])],
                    max_length=12, pack=True)
  assert rows[0]["decoder_target_tokens"].shape == (12,)
  np.testing.assert_array_equal(rows[0]["decoder_segment_ids"][:11],
                                [1] * 4 + [2] * 5 + [3] * 2)
  with pytest.raises(ValueError, match="decoder-only budget"):
    ip.feature_converter(ip.InputConfig("unused", max_length=128,
                                        architecture="encoder_decoder"))


def test_inspection_counts_truncated_examples_under_a_budget_and_a_split():
  from underrep_jax.jobs import inspect_data
  inputs, targets = np.array([10, 90, 120, 130]), np.array([5, 40, 20, 3])
  out = inspect_data.truncation(inputs, targets, 128, 96, 32, candidate_inputs_lengths=(64, 96))
  assert out["budget"]["total"] == {"count": 3, "fraction": 0.75}  # 130, 140, 133 > 128
  assert out["budget"]["inputs"]["count"] == 1  # the 130-token prompt fills the budget
  assert out["split"]["inputs"]["count"] == 2 and out["split"]["targets"]["count"] == 1
  assert out["split"]["total"]["count"] == 3
  assert out["splits_of_budget"]["64/64"]["total"]["count"] == 3
  assert out["least_truncating_split"] == "64/64"  # ties on total: fewer answers cut


@pytest.mark.parametrize("layout", [
    dict(pack=True), dict(pack=False), dict(pack=False, max_length=48),
    dict(pack=True, prefix_lm=True), dict(pack=True, architecture="encoder_decoder"),
    dict(pack=False, architecture="encoder_decoder")])
def test_batch_spec_matches_a_real_batch(mixture, layout):
  """What `plan` compiles for is what the loop is fed: names, shapes and dtypes."""
  config = ip.InputConfig(mixture, inputs_length=40, targets_length=24, global_batch_size=4,
                          **layout)
  batch = next(ip.batches(config))
  spec = ip.batch_spec(config)
  assert {k: (v.shape, v.dtype) for k, v in batch.items()} == spec
