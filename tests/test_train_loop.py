"""The generic loop in-process: metrics files, checkpoints, SIGTERM + resume, NaN stop."""

import json
import os
import signal

import jax
import numpy as np
import pytest

import toy_models
from tolerances import float32_tol  # tests/tolerances.py
from underrep_jax.train import checkpointing
from underrep_jax.train import loop
from underrep_jax.train import losses

MODEL = toy_models.SMALL_DECODER


def _train(workdir, steps=6, **kwargs):
  return toy_models.train_small_decoder(workdir, steps, keep_checkpoints=2,
                                        flops_per_token=1e6, **kwargs)


def _leaves(state):
  return [np.asarray(x) for x in jax.tree.leaves(state.params)]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("clean")
  return workdir, _train(workdir, peak_flops_per_device=1e9)


def test_run_writes_metrics_and_checkpoints(clean):
  workdir, result = clean
  assert (result.step, result.batches_consumed, result.preempted) == (6, 6, False)
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
  for key in ("loss", "learning_rate", "grad_norm", "weight", "accuracy"):
    assert all(key in r for r in rows), key
  assert "tokens_per_s" not in rows[0]  # the compiling step is not timed
  assert all(r["tokens_per_s"] > 0 and 0 < r["mfu"] for r in rows[1:])
  # The float32 schedule: a few scalar ops, no reduction.
  assert rows[0]["learning_rate"] == 0.0
  assert rows[2]["learning_rate"] == pytest.approx(3e-3, rel=float32_tol(1))
  assert rows[-1]["loss"] < rows[0]["loss"]
  assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
  ckpt = checkpointing.Checkpointer(workdir / "checkpoints")
  assert ckpt.all_steps() == [4, 6]  # every 2 steps, keeping the last 2
  assert ckpt.restore_config(6)["train"]["steps"] == 6
  ckpt.close()
  assert json.loads((workdir / "checkpoints" / "6" / "data" / "metadata").read_text()) == {
      "batches_consumed": 6}


def test_sigterm_saves_then_resume_is_bit_exact(clean, tmp_path):
  _, reference = clean
  starts = []

  def make_batches(start):
    starts.append(start)
    for i, batch in enumerate(toy_models.decoder_batches(8, start), start):
      if i == 2 and len(starts) == 1:
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while step 3 is being prepared
      yield batch

  first = _train(tmp_path, make_batches=make_batches)
  assert (first.step, first.preempted) == (3, True)
  ckpt = checkpointing.Checkpointer(tmp_path / "checkpoints")
  assert ckpt.all_steps() == [2, 3]
  ckpt.close()
  second = _train(tmp_path, make_batches=make_batches)
  assert starts == [0, 3] and (second.step, second.preempted) == (6, False)
  for got, want in zip(_leaves(second.state), _leaves(reference.state)):
    np.testing.assert_array_equal(got, want)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
  base = losses.token_loss(losses.decoder_only_adapter(MODEL))

  def poisoned_loss(params, batch, rng):
    loss_sum, weight, metrics = base(params, batch, rng)
    poison = batch["decoder_input_tokens"][0, 0] == toy_models.VOCAB - 1
    return jax.numpy.where(poison, jax.numpy.nan, loss_sum), weight, metrics

  def make_batches(start):
    for i, batch in enumerate(toy_models.decoder_batches(8, start), start):
      if i == 4:  # the batch of step 5
        batch["decoder_input_tokens"][0, 0] = toy_models.VOCAB - 1
      yield batch

  with pytest.raises(loop.NonFiniteLossError, match=r"step 5: non-finite loss=nan"):
    _train(tmp_path, make_batches=make_batches, loss_fn=poisoned_loss)
  ckpt = checkpointing.Checkpointer(tmp_path / "checkpoints")
  assert ckpt.latest_step() == 4
  ckpt.close()
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  steps = [json.loads(line)["step"] for line in lines]
  assert steps == [1, 2, 3, 4]


def test_wrong_batch_size_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="global batch has 16 rows but train.batch_size is 8"):
    _train(tmp_path, make_batches=lambda start: toy_models.decoder_batches(16, start))
