"""One line for every user error: the error family, the launchers, config validation."""

import dataclasses
import errno

import ml_collections
import pytest

import launcher  # tests/launcher.py
from underrep_jax import errors
from underrep_jax import validation


def _run(*args):
  return launcher.run_main(*args, timeout=300, check=False)


def _one_line(result, code: int, kind: str, *words):
  """Exit code `code`, exactly one launcher error line of `kind`, no traceback."""
  assert result.returncode == code, result.stderr[-3000:]
  lines = [l for l in result.stderr.splitlines() if l.startswith("underrep_jax.")]
  errors_ = [l for l in lines if " error: " in l]
  assert len(errors_) == 1, result.stderr[-3000:]
  assert errors_[0].startswith(f"underrep_jax.main: {kind} error: "), errors_[0]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  for word in words:
    assert word in errors_[0], errors_[0]
  return errors_[0]


def test_the_family_and_its_exit_codes():
  from underrep_jax.data.errors import DataError
  from underrep_jax.models import hf
  assert DataError is errors.DataError and issubclass(DataError, ValueError)
  assert issubclass(hf.CheckpointError, errors.ModelError)
  assert issubclass(hf.CheckpointError, ValueError)  # callers catching ValueError still do
  assert errors.ConfigError.exit_code == 2
  for kind in (errors.DataError, errors.CheckpointError, errors.ModelError,
               errors.ResourceError, errors.TrainingError):
    assert kind.exit_code == 1
  assert errors.one_line(errors.DataError("a.tsv row 3\nfield x")) == \
      "data error: a.tsv row 3; field x"


def test_os_errors_about_a_path_become_one_resource_line(tmp_path):
  full = errors.as_user_error(OSError(errno.ENOSPC, "No space left on device", "/w/ckpt"))
  assert errors.one_line(full) == "resource error: /w/ckpt: No space left on device"
  read_only = errors.as_user_error(PermissionError(errno.EACCES, "Permission denied", "/ro/w"))
  assert errors.one_line(read_only) == "resource error: /ro/w: Permission denied"
  a_file = tmp_path / "f"
  a_file.write_text("")
  try:
    a_file.mkdir(exist_ok=True)
  except FileExistsError as e:
    assert errors.one_line(errors.as_user_error(e)) == \
        f"resource error: {a_file}: is a file, not a directory"
  assert errors.as_user_error(ValueError("a bug")) is None  # bugs keep their traceback
  assert errors.as_user_error(OSError(errno.EIO, "I/O error")) is None


def _train_config(**train):
  config = ml_collections.ConfigDict()
  config.train = dict(steps=10, batch_size=16, microbatches=1)
  config.train.update(train)
  config.mesh = dict(shape=(-1, 1, 1), rules=None)
  return config


@pytest.mark.parametrize("field,value,words", [
    ("steps", -1, "train.steps=-1"), ("steps", 0, "train.steps=0"),
    ("batch_size", 0, "train.batch_size=0"),
    ("microbatches", 3, "train.microbatches=3"),
])
def test_training_numbers_must_be_positive(field, value, words):
  with pytest.raises(errors.ConfigError, match=words.replace(".", r"\.")):
    validation.validate_training(_train_config(**{field: value}), num_devices=1)


def test_batch_must_divide_over_the_data_parallel_devices():
  with pytest.raises(errors.ConfigError) as info:
    validation.validate_training(_train_config(batch_size=12), num_devices=8)
  assert "train.batch_size=12" in str(info.value)
  assert "data-parallel size 8" in str(info.value) and "8 devices" in str(info.value)
  config = _train_config(batch_size=12)
  config.mesh.shape = (2, 1, 4)  # batch over data x fsdp = 2: fine
  validation.validate_training(config, num_devices=8)
  config.mesh.shape = (2, 2, 2)  # data x fsdp = 4 does not divide 12? it does: 12 / 4
  validation.validate_training(config, num_devices=8)
  config.train.batch_size = 10
  with pytest.raises(errors.ConfigError, match="data-parallel size 4"):
    validation.validate_training(config, num_devices=8)
  config.train.update(batch_size=16, microbatches=4)  # 4 rows per microbatch over 4 devices
  validation.validate_training(config, num_devices=8)


def test_the_mesh_must_match_the_devices():
  config = _train_config()
  config.mesh.shape = (3, 1, 1)
  with pytest.raises(errors.ConfigError, match=r"mesh.shape=\(3, 1, 1\).*needs 3 devices"):
    validation.validate_training(config, num_devices=8)


def test_univar_epochs_replace_steps():
  validation.validate_training(_train_config(steps=0, epochs=2.0), num_devices=1)


def test_negative_steps_stop_before_any_work(tmp_path):
  result = _run("--config=configs/instructalign.py:tiny", f"--workdir={tmp_path}",
                "--config.train.steps=-1")
  _one_line(result, 2, "configuration", "train.steps=-1")
  assert not (tmp_path / "vocab").exists() and "Done" not in result.stderr


def test_an_impossible_mesh_is_one_line(tmp_path):
  _one_line(_run("--config=configs/instructalign.py:tiny", f"--workdir={tmp_path}",
                 "--config.mesh.shape=(3,1,1)"), 2, "configuration", "mesh.shape=(3, 1, 1)",
            "1 are available")


def test_a_workdir_that_is_a_file(tmp_path):
  a_file = tmp_path / "not_a_dir"
  a_file.write_text("")
  _one_line(_run("--config=configs/inspect_data.py", f"--workdir={a_file}"), 1, "resource",
            str(a_file))


def test_an_unknown_language_filter_is_an_error_not_an_empty_report(tmp_path):
  result = _run("--config=configs/evaluate.py:tiny", f"--workdir={tmp_path}",
                "--config.model.path=/nonexistent", "--config.languages=xyz")
  _one_line(result, 2, "configuration", "nusax_senti", "'xyz'", "sun")
  assert not (tmp_path / "report.md").exists()


def test_an_unknown_evaluation_task(tmp_path):
  _one_line(_run("--config=configs/evaluate.py:tiny", f"--workdir={tmp_path}",
                 "--config.model.path=/nonexistent", "--config.tasks=nusax_sentiment"),
            2, "configuration", "'nusax_sentiment'", "nusax_senti")


def test_a_bad_model_path_is_one_line_and_debug_shows_the_traceback(tmp_path):
  args = ("--config=configs/evaluate.py:tiny", f"--workdir={tmp_path}",
          "--config.model.path=/nonexistent/model")
  _one_line(_run(*args), 1, "model", "/nonexistent/model")
  debug = _run(*args, "--debug")
  assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_an_override_key_typo_suggests_the_field(tmp_path):
  result = _run("--config=configs/inspect_data.py", f"--workdir={tmp_path}",
                "--config.data.num_exampels=3")
  line = [l for l in result.stderr.splitlines() if "error" in l][0]
  assert result.returncode == 2
  assert line == ("underrep_jax.main: error: unknown config key 'config.data.num_exampels': "
                  "the config has no such field; did you mean config.data.num_examples?")


def test_show_prints_one_line_for_an_unknown_task():
  import subprocess
  import sys
  result = subprocess.run([sys.executable, "-m", "underrep_jax.show", "no_such_task"],
                          cwd=launcher.REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 2, result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == (
      "underrep_jax.show: configuration error: no task or mixture named 'no_such_task'; "
      "see --list")


def test_a_latin1_replay_file_names_the_file_and_line(tmp_path):
  from underrep_jax.data import seqio_pipeline
  path = tmp_path / "replay.jsonl"
  path.write_bytes(b'{"inputs": "a", "targets": "b"}\n'
                   + '{"inputs": "caf\u00e9", "targets": "b"}\n'.encode("latin-1"))
  with pytest.raises(errors.DataError) as info:
    seqio_pipeline.read_jsonl_pairs(path)
  assert str(info.value) == (f"{path}, line 2: not UTF-8 (byte 0xe9 at column 16); "
                             "re-encode the file as UTF-8")


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
  from underrep_jax.evaluation import model_loading
  from underrep_jax.evaluation import testing
  path = tmp_path_factory.mktemp("tiny_lm")
  testing.save_tiny_lm(path)
  return model_loading.load(path)


def test_token_ids_outside_the_vocabulary_are_refused(tiny_lm):
  from underrep_jax.evaluation import scoring
  size = tiny_lm.hf_config["vocab_size"]
  scorer = scoring.Scorer(tiny_lm, batch_size=2, length_multiple=8)
  with pytest.raises(errors.ModelError) as info:
    scorer.score_ids([[5, 6], [7, size]], [[8]], modes=("sum",), desc="nusax_senti/sun/p1")
  assert str(info.value) == (
      f"{tiny_lm.source}: nusax_senti/sun/p1 example 1 has token id {size} outside the "
      f"model's vocabulary of {size}; the tokenizer does not belong to this model")
  from underrep_jax.evaluation import generation
  generator = generation.Generator(tiny_lm, batch_size=2, max_new_tokens=2)
  with pytest.raises(errors.ModelError, match=rf"mt prompt 0 has token id {size + 1} outside"):
    generator.generate_ids([[size + 1]], desc="mt")


def test_non_finite_scores_are_refused_and_predictions_stay_json(tiny_lm, tmp_path):
  import jax
  import numpy as np
  from underrep_jax.evaluation import report
  from underrep_jax.evaluation import scoring
  poisoned = dataclasses.replace(tiny_lm, params=jax.tree.map(
      lambda x: x * np.nan if x.ndim == 2 else x, tiny_lm.params))
  scorer = scoring.Scorer(poisoned, batch_size=2, length_multiple=8)
  with pytest.raises(errors.ModelError, match=r"desc example 0: non-finite sum score nan"):
    scorer.score_ids([[5, 6]], [[8]], modes=("sum",), desc="desc")
  with pytest.raises(ValueError):  # never a bare NaN in predictions.jsonl
    report.write_predictions(tmp_path / "p.jsonl", [{"scores": {"a": float("nan")}}])
