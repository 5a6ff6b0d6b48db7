"""Every family against transformers' PyTorch model, on right- and left-padded batches."""

import numpy as np
import pytest

from tolerances import float32_tol  # tests/tolerances.py
from underrep_jax.models import hf
from underrep_jax.models import testing

NAMES = ["bloom", "llama", "mistral", "qwen2", "xglm", "mt5", "bert", "xlm-roberta"]
PAD_IDS = {"xglm": 1, "xlm-roberta": 1}


@pytest.fixture(scope="module", params=NAMES)
def tiny(request, tmp_path_factory):
  name = request.param
  directory = tmp_path_factory.mktemp(name)
  torch_model = testing.save_tiny(name, directory)
  return name, torch_model, hf.load(directory)


@pytest.mark.parametrize("left", [False, True], ids=["right_padded", "left_padded"])
def test_matches_transformers(tiny, left):
  name, torch_model, model = tiny
  ids, mask = testing.padded_batch([9, 5, 2, 1], 9, left=left, pad_id=PAD_IDS.get(name, 0))
  decoder_ids = position_ids = None
  compare = mask.astype(bool)
  if model.kind == "encoder_decoder":
    decoder_ids, decoder_mask = testing.padded_batch([6, 6, 3, 1], 6, seed=1)
    compare = decoder_mask.astype(bool)
  if name == "xglm":  # transformers 5 numbers XGLM positions through the padding; we skip it.
    position_ids = np.maximum(np.cumsum(mask, axis=-1) - 1, 0)
  expected = testing.torch_forward(torch_model, ids, mask, decoder_ids, position_ids)
  actual = testing.our_forward(model, ids, mask, decoder_ids)
  assert actual.shape == expected.shape
  # Another framework's float32 order: reductions of <= 256 (BLOOM's MLP, 4 * 64) through
  # up to 2 + 2 layers and a head (depth 5), relative to the largest output (floor 1; 45
  # for mT5): 9.5e-5 of it, while attending to one wrong token moves them by >= 0.01.
  atol = float32_tol(256, depth=5, scale=max(1.0, np.abs(expected[compare]).max()))
  assert np.abs(actual[compare] - expected[compare]).max() <= atol


def test_families_and_configs(tiny):
  name, torch_model, model = tiny
  expected_family = {"mistral": "llama", "qwen2": "llama", "mt5": "t5", "xlm-roberta": "bert"}
  assert model.family == expected_family.get(name, name)
  assert model.hf_config["model_type"] == torch_model.config.model_type
