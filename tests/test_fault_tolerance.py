"""What a restart meets after things went wrong: damaged checkpoints, a full disk, a busy
workdir, a changed config, a truncated SentencePiece model. The real loop on a tiny model."""

import errno
import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from orbax.checkpoint._src.handlers import json_checkpoint_handler

import toy_models
from underrep_jax import errors
from underrep_jax.data import corpus_vocab
from underrep_jax.data import vocabularies
from underrep_jax.train import checkpointing
from underrep_jax.train import loop
from underrep_jax.train import workdir as workdir_lib


def _train(workdir, steps=4, **train_overrides):
  return toy_models.train_small_decoder(workdir, steps, **train_overrides)


def _leaves(state):
  return [np.asarray(x) for x in jax.tree.leaves(state.params)]


def _metric_steps(workdir):
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [json.loads(line)["step"] for line in lines]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
  """A finished 4-step run (checkpoints 2 and 4) and its result."""
  workdir = tmp_path_factory.mktemp("clean")
  return workdir, _train(workdir)


def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(clean, tmp_path, caplog):
  reference_dir, reference = clean
  workdir = tmp_path / "run"
  (workdir / "checkpoints").mkdir(parents=True)
  for step in ("2", "4"):
    os.system(f"cp -r {reference_dir / 'checkpoints' / step} {workdir / 'checkpoints'}")
  # A partial copy: the latest step's array data files are missing.
  for data in (workdir / "checkpoints" / "4" / "state" / "ocdbt.process_0" / "d").iterdir():
    data.unlink()

  result = _train(workdir)
  assert result.step == 4
  # Steps 3 and 4 were trained again from checkpoint 2: the same params, bit for bit.
  for got, want in zip(_leaves(result.state), _leaves(reference.state)):
    np.testing.assert_array_equal(got, want)
  moved = [p.name for p in (workdir / "checkpoints").iterdir() if p.name.startswith("corrupt-")]
  assert len(moved) == 1 and moved[0].startswith("corrupt-4-"), moved
  assert any("Checkpoint 4" in r.getMessage() and "does not restore" in r.getMessage()
             for r in caplog.records)
  ckpt = checkpointing.Checkpointer(workdir / "checkpoints")
  assert ckpt.all_steps() == [2, 4]  # the corrupt copy is not a step
  ckpt.close()


def test_when_no_checkpoint_restores_nothing_is_moved(clean, tmp_path):
  reference_dir, _ = clean
  workdir = tmp_path / "run"
  (workdir / "checkpoints").mkdir(parents=True)
  os.system(f"cp -r {reference_dir / 'checkpoints' / '4'} {workdir / 'checkpoints'}")
  (workdir / "checkpoints" / "4" / "state" / "manifest.ocdbt").unlink()
  with pytest.raises(errors.CheckpointError, match=r"no checkpoint in .* restores \(steps 4\)"):
    _train(workdir)
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["4"]
  assert not (workdir / workdir_lib.LOCK_NAME).exists()  # the lock went with the error


def test_a_full_disk_stops_training_at_the_next_step(tmp_path, monkeypatch):
  original = json_checkpoint_handler.JsonCheckpointHandler._save_fn

  async def full_disk(self, x, directory):
    if "/2.orbax-checkpoint-tmp" in str(directory):
      raise OSError(errno.ENOSPC, "No space left on device", str(directory))
    return await original(self, x, directory)

  monkeypatch.setattr(json_checkpoint_handler.JsonCheckpointHandler, "_save_fn", full_disk)
  with pytest.raises(errors.ResourceError) as info:
    _train(tmp_path, steps=8)
  message = errors.one_line(info.value)
  assert message.startswith("resource error: saving checkpoint 2 in "), message
  assert "No space left on device" in message and str(tmp_path) in message
  # The save of step 2 failed in the background; training stopped right after step 3 at
  # the latest (the check runs after every step), not at the next save or the end.
  assert _metric_steps(tmp_path)[-1] <= 3


def test_a_second_run_on_a_busy_workdir_gets_one_clear_error(tmp_path):
  other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  try:
    lock = tmp_path / workdir_lib.LOCK_NAME
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": other.pid,
                                "started": "2026-01-01T00:00:00"}))
    with pytest.raises(errors.ResourceError) as info:
      _train(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and f"PID {other.pid}" in message
    assert socket.gethostname() in message
    assert not (tmp_path / "checkpoints").exists()  # refused before touching anything
    assert json.loads(lock.read_text())["pid"] == other.pid  # and the lock is theirs
  finally:
    other.kill()
    other.wait()


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path, caplog):
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  lock = tmp_path / workdir_lib.LOCK_NAME
  lock.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))
  with workdir_lib.locked(tmp_path):
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    with workdir_lib.locked(tmp_path):  # the launcher and the loop both take it
      pass
    assert lock.exists()
  assert not lock.exists()
  assert any("stale lock" in r.getMessage() for r in caplog.records)


def test_a_lock_from_another_host_is_not_taken(tmp_path):
  lock = tmp_path / workdir_lib.LOCK_NAME
  lock.write_text(json.dumps({"host": "elsewhere", "pid": 1}))
  with pytest.raises(errors.ResourceError, match=r"locked by a run on host elsewhere .*delete"):
    workdir_lib.acquire(tmp_path)


def test_a_restart_with_another_config_is_refused_unless_allowed(clean, tmp_path):
  reference_dir, _ = clean
  workdir = tmp_path / "run"
  os.system(f"cp -r {reference_dir} {workdir}")
  os.remove(workdir / "metrics.jsonl")
  with pytest.raises(errors.ConfigError) as info:
    _train(workdir, steps=6, batch_size=16)
  message = str(info.value)
  assert "train.batch_size: 8 -> 16" in message and "allow_config_change" in message
  assert "train.steps" not in message  # steps may grow
  with pytest.raises(errors.ConfigError, match=r"train.steps=3 is below step 4"):
    _train(workdir, steps=3)
  assert not (workdir / "metrics.jsonl").exists()  # refused before training
  result = _train(workdir, steps=6)  # only more steps: resumes
  assert result.step == 6 and _metric_steps(workdir) == [5, 6]


def test_config_changes_ignore_what_does_not_change_the_run():
  config = toy_models.toy_config()
  saved = checkpointing.config_to_json(config)
  changed = toy_models.toy_config(steps=40, checkpoint_every=5, mesh=(2, 2, 2))
  assert checkpointing.config_changes(saved, changed) == []
  changed.optimizer.learning_rate = 1e-4
  assert checkpointing.config_changes(saved, changed) == [
      "optimizer.learning_rate: 0.003 -> 0.0001"]


def test_fields_added_since_the_checkpoint_count_only_when_set():
  """A workdir saved before a release added a field resumes while the field keeps its
  neutral default; giving it a value is a change of the run."""
  saved = checkpointing.config_to_json(toy_models.toy_config())
  newer = toy_models.toy_config()
  with newer.unlocked():
    newer.data_mixture = ""
  assert checkpointing.config_changes(saved, newer) == []
  newer.data_mixture = "my_mix"
  assert checkpointing.config_changes(saved, newer) == ["data_mixture: '<absent>' -> 'my_mix'"]


def test_the_nan_stop_says_whether_a_checkpoint_exists():
  with pytest.raises(loop.NonFiniteLossError, match="no checkpoint was written yet"):
    loop._check_finite(1, {"loss": float("nan")}, None, "/w/checkpoints")
  with pytest.raises(loop.NonFiniteLossError, match="checkpoint of step 4 in /w/checkpoints"):
    loop._check_finite(5, {"loss": float("inf")}, 4, "/w/checkpoints")
  assert issubclass(loop.NonFiniteLossError, errors.UserError)


TEXTS = [f"kalimat nomor {i} dalam bahasa {lang}" for i in range(60)
         for lang in ("sunda", "jawa", "bali")]


def test_a_truncated_sentencepiece_model_is_named_and_retrained(tmp_path, caplog,
                                                                 monkeypatch):
  vocab_dir = tmp_path / "vocab"
  vocabularies.train_sentencepiece(TEXTS, vocab_dir / "spm", 100)
  good = (vocab_dir / "spm.model").read_bytes()
  (vocab_dir / "spm.model").write_bytes(good[:len(good) // 3])  # as a full disk leaves it
  problem = vocabularies.sentencepiece_problem(vocab_dir / "spm.model")
  assert problem and "spm.model" in problem

  monkeypatch.setattr(corpus_vocab, "mixture_texts", lambda name, split="train": TEXTS)
  vocab = corpus_vocab.resolve("sentencepiece", "unused", vocab_dir, 100)
  assert (vocab_dir / "spm.model").read_bytes() == good  # deterministic retraining
  assert vocab.decode(vocab.encode("kalimat nomor 7")) == "kalimat nomor 7"
  assert any("spm.model does not load" in r.getMessage() for r in caplog.records)
  assert len(list(vocab_dir.glob("spm.model.corrupt-*"))) == 1
  given = next(vocab_dir.glob("spm.model.corrupt-*")).rename(tmp_path / "given.model")
  with pytest.raises(errors.DataError) as info:  # a user's own .model file: named, refused
    vocabularies.load(given)
  assert str(info.value).startswith(f"{given}: not a readable SentencePiece model")


def test_sentencepiece_training_killed_midway_leaves_no_model(tmp_path, monkeypatch):
  import sentencepiece as spm

  def killed(**kwargs):  # writes part of the model, then the disk is full
    pathlib.Path(kwargs["model_prefix"] + ".model").write_bytes(b"\x0a\x05par")
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(spm.SentencePieceTrainer, "train", killed)
  with pytest.raises(OSError):
    vocabularies.train_sentencepiece(TEXTS, tmp_path / "spm", 100)
  assert list(tmp_path.iterdir()) == []  # nothing a restart would trust


def test_sentencepiece_training_killed_by_sigkill_then_restart(tmp_path, monkeypatch):
  """SIGKILL while the model file is half written: the restart trains a complete model."""
  code = ("import os, pathlib, sys, time\n"
          "import sentencepiece as spm\n"
          "from underrep_jax.data import vocabularies\n"
          "real = spm.SentencePieceTrainer.train\n"
          "def half_written(**kwargs):\n"
          "  real(**kwargs)\n"
          "  model = pathlib.Path(kwargs['model_prefix'] + '.model')\n"
          "  model.write_bytes(model.read_bytes()[:100])\n"
          "  pathlib.Path(sys.argv[1], 'writing').write_text('')\n"
          "  time.sleep(600)\n"
          "spm.SentencePieceTrainer.train = half_written\n"
          f"vocabularies.train_sentencepiece({TEXTS!r}, pathlib.Path(sys.argv[1]) / 'spm', 100)\n")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=env,
                          stderr=subprocess.PIPE, text=True)
  try:
    deadline = time.time() + 120
    while not (tmp_path / "writing").exists():
      assert proc.poll() is None, proc.stderr.read()[-2000:]
      assert time.time() < deadline
      time.sleep(0.05)
  finally:
    proc.kill()
    proc.wait()
  assert proc.returncode == -9
  assert not (tmp_path / "spm.model").exists()  # only a temporary name was half written
  assert list(tmp_path.glob(".spm.tmp-*.model"))
  monkeypatch.setattr(corpus_vocab, "mixture_texts", lambda name, split="train": TEXTS)
  vocab = corpus_vocab.resolve("sentencepiece", "unused", tmp_path, 100)
  assert vocabularies.sentencepiece_problem(tmp_path / "spm.model") is None
  assert vocab.decode(vocab.encode("kalimat nomor 7")) == "kalimat nomor 7"
  assert not list(tmp_path.glob(".spm.tmp-*"))  # the killed run's leftovers are gone


FULL_DISK_RUN = """
import errno, sys
sys.path.insert(0, {tests!r})
import jax, numpy as np
from absl import app
from orbax.checkpoint._src.handlers import json_checkpoint_handler as jch
import toy_models
from underrep_jax import main as launcher
from underrep_jax.train import loop, losses

original = jch.JsonCheckpointHandler._save_fn

async def full_disk(self, x, directory):
  if "/2.orbax-checkpoint-tmp" in str(directory):
    raise OSError(errno.ENOSPC, "No space left on device", str(directory))
  return await original(self, x, directory)

jch.JsonCheckpointHandler._save_fn = full_disk
model = toy_models.ToyDecoder(layers=1)
tokens = np.zeros((1, 16), np.int32)

def train(workdir):
  loop.train(toy_models.toy_config(steps=8, checkpoint_every=2), workdir,
             init_params=toy_models.init_fn(model, tokens),
             loss_fn=losses.token_loss(losses.decoder_only_adapter(model)),
             make_batches=lambda start: toy_models.decoder_batches(8, start),
             load_params=lambda s: jax.device_put(toy_models.numpy_params(model, tokens), s))

app.run(lambda argv: launcher.run_reporting_errors(train, argv[1]))
"""


def test_a_full_disk_is_one_line_on_the_console(tmp_path):
  """The launcher's view of a failed background save: one line, exit 1, no tracebacks
  from Orbax's threads (before: ~980 lines and training went on)."""
  code = FULL_DISK_RUN.format(tests=str(pathlib.Path(__file__).parent))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", XLA_FLAGS="")
  result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 1, result.stderr[-3000:]
  lines = [l for l in result.stderr.splitlines() if " error: " in l]
  assert len(lines) == 1 and lines[0].startswith(
      "underrep_jax.main: resource error: saving checkpoint 2 in "), result.stderr[-3000:]
  assert "No space left on device" in lines[0]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]


def test_an_atomic_write_that_fails_leaves_the_old_file(tmp_path):
  from underrep_jax import files
  target = tmp_path / "summary.json"
  files.atomic_write_text(target, "old\n")
  with pytest.raises(OSError):
    with files.atomic_path(target) as tmp:
      tmp.write_text("half")
      raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
  assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == [target.name]
  files.atomic_write_text(target, "new\n")
  assert target.read_text() == "new\n" and [p.name for p in tmp_path.iterdir()] == [target.name]
