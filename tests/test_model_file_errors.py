"""Damaged checkpoint files end in one line that names the file, never a raw traceback.

Each case is a tiny model saved by transformers and then damaged the way a partial copy,
a flaky disk or a hand edit leaves it; `hf.load` must raise a `CheckpointError` (a model
error: exit 1 through the launcher) whose one-line message names the file at fault.
"""

import json

import pytest

from underrep_jax import errors
from underrep_jax.models import hf
from underrep_jax.models import testing


@pytest.fixture
def checkpoint(tmp_path):
  testing.save_tiny("bloom", tmp_path)
  return tmp_path


def _load_error(path) -> str:
  with pytest.raises(hf.CheckpointError) as error:
    hf.load(path)
  assert isinstance(error.value, errors.UserError) and error.value.exit_code == 1
  message = str(error.value)
  assert "\n" not in message
  return message


def test_a_truncated_safetensors_file_is_named(checkpoint):
  weights = checkpoint / hf.SAFETENSORS
  weights.write_bytes(weights.read_bytes()[:len(weights.read_bytes()) // 2])
  assert str(weights) in _load_error(checkpoint)


def test_an_empty_safetensors_file_is_named(checkpoint):
  (checkpoint / hf.SAFETENSORS).write_bytes(b"")
  assert str(checkpoint / hf.SAFETENSORS) in _load_error(checkpoint)


def test_an_index_naming_a_missing_shard(checkpoint):
  (checkpoint / hf.SAFETENSORS).rename(checkpoint / "model-00001-of-00002.safetensors")
  from safetensors import safe_open
  with safe_open(checkpoint / "model-00001-of-00002.safetensors", framework="numpy") as f:
    names = list(f.keys())
  weight_map = {n: "model-00001-of-00002.safetensors" for n in names[1:]}
  weight_map[names[0]] = "model-00002-of-00002.safetensors"  # never written
  (checkpoint / hf.SAFETENSORS_INDEX).write_text(json.dumps({"weight_map": weight_map}))
  message = _load_error(checkpoint)
  assert str(checkpoint / hf.SAFETENSORS_INDEX) in message
  assert "model-00002-of-00002.safetensors" in message


def test_an_index_that_is_not_json(checkpoint):
  (checkpoint / hf.SAFETENSORS_INDEX).write_text("{'weight_map': ")
  assert str(checkpoint / hf.SAFETENSORS_INDEX) in _load_error(checkpoint)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_a_config_that_is_not_a_json_object(checkpoint, text):
  (checkpoint / "config.json").write_text(text)
  assert str(checkpoint / "config.json") in _load_error(checkpoint)
