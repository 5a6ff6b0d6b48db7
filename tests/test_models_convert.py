"""Pickle-only checkpoints are refused with the conversion command, and converting them
gives safetensors that load to the same model."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from underrep_jax.models import convert
from underrep_jax.models import hf
from underrep_jax.models import testing
from tolerances import float32_tol  # tests/tolerances.py

IDS = np.array([[5, 9, 17, 3, 44, 2]], np.int32)


def _save_pickled(name, directory, shards: int = 1, **overrides):
  """A tiny model as the pickled layout older transformers wrote (v5 writes only
  safetensors): pytorch_model.bin, or `shards` files with pytorch_model.bin.index.json."""
  model = testing.make_torch_model(name, **overrides)
  model.config.save_pretrained(directory)
  state = model.state_dict()  # tied weights: one tensor under two names
  if shards == 1:
    torch.save(state, directory / convert.PICKLE)
  else:
    names = list(state)
    weight_map = {}
    for i in range(shards):
      file = f"pytorch_model-{i + 1:05d}-of-{shards:05d}.bin"
      part = {n: state[n] for n in names[i::shards]}
      torch.save(part, directory / file)
      weight_map.update({n: file for n in part})
    (directory / convert.PICKLE_INDEX).write_text(json.dumps({"weight_map": weight_map}))
  assert not list(directory.glob("*.safetensors"))
  return model


def test_pickle_is_refused_naming_the_command(tmp_path):
  _save_pickled("bloom", tmp_path)
  with pytest.raises(hf.CheckpointError) as error:
    hf.load(tmp_path)
  message = str(error.value)
  assert f"python -m underrep_jax.models.convert {tmp_path}" in message and "\n" not in message


def test_converted_tied_bloom_loads_and_matches_torch(tmp_path):
  torch_model = _save_pickled("bloom", tmp_path)  # lm_head ties to the word embeddings
  assert convert.convert(tmp_path) == tmp_path
  assert (tmp_path / convert.PICKLE).is_file()  # the original stays
  from safetensors import safe_open
  with safe_open(tmp_path / convert.SAFETENSORS, framework="numpy") as f:
    names, metadata = set(f.keys()), f.metadata()
  assert "lm_head.weight" not in names  # the tied alias is stored once...
  assert metadata["lm_head.weight"] == "transformer.word_embeddings.weight"  # ...and noted
  ours = testing.our_forward(hf.load(tmp_path), IDS, np.ones_like(IDS))
  # The torch model is the reference: float32 through 2 layers (MLP 4 * 64) and the tied
  # head, relative to the logits' size; a tensor read in the wrong layout moves them O(1).
  expected = testing.torch_forward(torch_model, IDS, np.ones_like(IDS))
  np.testing.assert_allclose(ours, expected, rtol=0, atol=float32_tol(
      256, depth=3, scale=max(1.0, np.abs(expected).max())))
  import transformers  # transformers reads the converted directory too, ties included
  again = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, use_safetensors=True)
  np.testing.assert_array_equal(testing.torch_forward(again.eval(), IDS, np.ones_like(IDS)),
                                expected)


def test_sharded_pickles_convert_by_command(tmp_path):
  source, out = tmp_path / "source", tmp_path / "out"
  source.mkdir()
  torch_model = _save_pickled("mt5", source, shards=3)
  shards = sorted(p.name for p in source.glob("pytorch_model-*.bin"))
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
  result = subprocess.run([sys.executable, "-m", "underrep_jax.models.convert", str(source),
                           "--out", str(out)], capture_output=True, text=True, env=env)
  assert result.returncode == 0, result.stderr[-2000:]
  index = json.loads((out / convert.SAFETENSORS_INDEX).read_text())
  assert len(set(index["weight_map"].values())) == len(shards)
  assert "shared.weight" in index["weight_map"]
  assert not list(out.glob("pytorch_model*")) and (out / "config.json").is_file()
  decoder_ids = np.array([[0, 7, 3]], np.int32)
  ours = testing.our_forward(hf.load(out), IDS, np.ones_like(IDS), decoder_ids)
  expected = testing.torch_forward(torch_model, IDS, np.ones_like(IDS), decoder_ids)
  # Encoder and decoder stacks (2 + 2 layers, MLP 4 * 64) and the head, as above.
  np.testing.assert_allclose(ours, expected, rtol=0, atol=float32_tol(
      256, depth=5, scale=max(1.0, np.abs(expected).max())))


def test_partial_overlaps_are_copied_and_aliases_kept_once():
  base = torch.arange(12.0).reshape(3, 4)
  state = {"b.weight": base, "lm_head.weight": base, "a.row": base[1], "c.other": torch.ones(2)}
  tensors, dropped = convert.deduplicate(state)
  assert dropped == {"lm_head.weight": "b.weight"}
  assert set(tensors) == {"b.weight", "a.row", "c.other"}
  storages = {t.untyped_storage().data_ptr() for t in tensors.values()}
  assert len(storages) == 3
  torch.testing.assert_close(tensors["a.row"], base[1], rtol=0, atol=0)


def test_without_torch_the_command_names_the_extra(tmp_path):
  _save_pickled("bloom", tmp_path)
  code = ("import sys; sys.modules['torch'] = None\n"
          "from underrep_jax.models import convert\n"
          f"sys.exit(convert.main([{str(tmp_path)!r}]))\n")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
  assert result.returncode == 1
  assert "pip install 'underrep_jax[convert]'" in result.stderr
  assert not (tmp_path / convert.SAFETENSORS).exists()


def test_nothing_to_convert_is_one_line(tmp_path):
  with pytest.raises(convert.ConversionError, match=f"{tmp_path}: no pytorch_model.bin"):
    convert.convert(tmp_path)
