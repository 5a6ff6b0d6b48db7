"""Training hooks, metrics fetched only when the host needs them, and the NaN stop then."""

import json

import jax
import numpy as np
import pytest

import toy_models
from underrep_jax.train import checkpointing
from underrep_jax.train import loop
from underrep_jax.train import losses

MODEL = toy_models.SMALL_DECODER


def _train(workdir, steps, hooks=(), **kwargs):
  return toy_models.train_small_decoder(workdir, steps, hooks=hooks, **kwargs)


def _rows(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_hooks_run_at_their_cadence_log_scalars_and_resume_without_repeats(tmp_path):
  calls = {"probe": [], "final": []}

  def probe(ctx):
    # The state handed over is the one after this step's update.
    assert int(jax.device_get(ctx.state.step)) == ctx.step
    calls["probe"].append(ctx.step)
    return {"twice_step": 2 * ctx.step}

  def final(ctx):
    calls["final"].append(ctx.step)  # returns nothing: nothing is logged

  hooks = [loop.Hook(probe, every_n_steps=2), loop.Hook(final, at_end=True, name="final")]
  # A first run to step 4, then the same workdir resumed with train.steps grown to 6.
  first = _train(tmp_path, 4, hooks, log_every=3)
  assert first.step == 4 and calls == {"probe": [2, 4], "final": [4]}
  second = _train(tmp_path, 6, hooks, log_every=3)
  assert second.step == 6
  assert calls == {"probe": [2, 4, 6], "final": [4, 6]}  # no step before the resume again

  rows = {r["step"]: r for r in _rows(tmp_path)}
  assert sorted(rows) == [2, 3, 4, 6]  # hook steps 2, 4, 6; log steps 3, 4 (end), 6
  assert rows[2] == {"step": 2, "probe/twice_step": 4.0}  # a hook step that is no log step
  assert "loss" in rows[3] and "probe/twice_step" not in rows[3]
  for step in (4, 6):
    assert rows[step]["probe/twice_step"] == 2 * step and "loss" in rows[step]
  assert not any(k.startswith("final/") for r in rows.values() for k in r)


def test_a_hook_needs_a_cadence():
  with pytest.raises(ValueError, match="hook probe: every_n_steps=0 must be > 0"):
    loop.Hook(lambda ctx: None, name="probe")


def test_metrics_reach_the_host_only_at_log_steps(tmp_path, monkeypatch):
  fetched = []
  original = loop._Pending.fetch

  def spy(self):
    out = original(self)
    fetched.append([step for step, _, _ in out])
    return out

  monkeypatch.setattr(loop._Pending, "fetch", spy)
  result = _train(tmp_path, 6, log_every=3, checkpoint_every=0)
  # Step 1 compiles and is fetched alone (the throughput clock starts after it); then one
  # transfer per log step carries every step since the previous one.
  assert fetched == [[1], [2, 3], [4, 5, 6]]
  rows = _rows(tmp_path)
  assert [r["step"] for r in rows] == [3, 6]
  assert all(r["tokens_per_s"] > 0 for r in rows)
  assert result.last_metrics["loss"] > 0 and np.isfinite(result.last_metrics["loss"])


def test_nan_is_found_at_the_next_log_step_and_names_the_bad_step(tmp_path):
  base = losses.token_loss(losses.decoder_only_adapter(MODEL))

  def poisoned_loss(params, batch, rng):
    loss_sum, weight, metrics = base(params, batch, rng)
    poison = batch["decoder_input_tokens"][0, 0] == toy_models.VOCAB - 1
    return jax.numpy.where(poison, jax.numpy.nan, loss_sum), weight, metrics

  yielded = []

  def make_batches(start):
    for i, batch in enumerate(toy_models.decoder_batches(8, start), start):
      if i == 3:  # the batch of step 4
        batch["decoder_input_tokens"][0, 0] = toy_models.VOCAB - 1
      yielded.append(i)
      yield batch

  with pytest.raises(loop.NonFiniteLossError,
                     match=r"step 4: non-finite loss=nan \(found at step 6\); stopped "
                           r"without saving any state from step 4 on \(the checkpoint of "
                           r"step 3 in "):
    _train(tmp_path, 6, make_batches=make_batches, loss_fn=poisoned_loss, log_every=3,
           checkpoint_every=3)
  assert yielded[-1] == 5  # steps 5 and 6 ran: the check happens at log step 6
  ckpt = checkpointing.Checkpointer(tmp_path / "checkpoints")
  assert ckpt.all_steps() == [3]  # nothing at or after the bad step, although 6 was due
  ckpt.close()
  assert [r["step"] for r in _rows(tmp_path)] == [3]
