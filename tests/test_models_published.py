"""Published checkpoint layouts: configs as on the Hub (shrunk) and their tensor names.

Each fixture in tests/published/ loads with `hf.load`, matches transformers' PyTorch model
on the same checkpoint, and exports (`hf.save`) to a directory transformers loads and
whose config.json gives every setting once.
"""

import json

import numpy as np
import pytest
import torch
import transformers

import published_checkpoints
from underrep_jax.models import hf
from underrep_jax.models import testing

FLOAT32_EPS = float(np.finfo(np.float32).eps)
AUTO = {"decoder": transformers.AutoModelForCausalLM,
        "encoder_decoder": transformers.AutoModelForSeq2SeqLM,
        "encoder": transformers.AutoModel}
# Keys that name one setting (transformers' attribute maps, BLOOM's n_embed, the
# transformers 5 renames): an export must not carry two of a group.
ALIAS_GROUPS = [{"n_embed", "hidden_size", "d_model"}, {"n_layer", "num_hidden_layers", "num_layers"},
                {"n_head", "num_attention_heads", "num_heads", "attention_heads"},
                {"d_kv", "head_dim"}, {"torch_dtype", "dtype"},
                {"rope_scaling", "rope_parameters"}, {"rope_theta", "rope_parameters"}]


def tolerance(config, expected: np.ndarray) -> float:
  """Float32 rounding bound for one forward pass on the CPU.

  Each matmul/softmax/norm reduction of length K adds up to about K * eps relative error
  (summation order differs between XLA and PyTorch, e.g. AVX2 vs AVX-512 blocking); the
  longest reduction (the MLP's inner width) is counted once per sublayer of every layer,
  and the error is relative to the largest output magnitude. A factor 4 covers the
  exp/tanh/erf approximations, which differ by a few ulp between the two libraries.
  """
  hf_config = config.to_hf()
  width = max(hf_config.get(k) or 0 for k in ("intermediate_size", "d_ff", "ffn_dim", "hidden_size",
                                              "d_model"))
  if hf_config["model_type"] == "bloom":
    width = 4 * hf_config["hidden_size"]
  layers = sum(hf_config.get(k) or 0 for k in ("num_hidden_layers", "n_layer", "num_layers",
                                               "num_decoder_layers"))
  scale = max(1.0, float(np.abs(expected).max()))
  return 4 * FLOAT32_EPS * width * 2 * layers * scale


def _batch(model, pad_id):
  ids, mask = testing.padded_batch([9, 5, 2], 9, pad_id=pad_id, low=4, vocab=model.config.vocab_size)
  decoder_ids, compare = None, mask.astype(bool)
  if model.kind == "encoder_decoder":
    decoder_ids, decoder_mask = testing.padded_batch([6, 4, 1], 6, seed=1, low=4,
                                                     vocab=model.config.vocab_size)
    compare = decoder_mask.astype(bool)
  return ids, mask, decoder_ids, compare


def _torch_outputs(torch_model, model, ids, mask, decoder_ids):
  position_ids = None
  if model.family == "xglm":  # transformers 5 numbers XGLM positions through the padding
    position_ids = np.maximum(np.cumsum(mask, axis=-1) - 1, 0)
  return testing.torch_forward(torch_model, ids, mask, decoder_ids, position_ids)


@pytest.fixture(scope="module", params=list(published_checkpoints.FIXTURES))
def published(request, tmp_path_factory):
  name = request.param
  directory = published_checkpoints.write_checkpoint(name, tmp_path_factory.mktemp(name))
  model = hf.load(directory)
  torch_model = AUTO[model.kind].from_pretrained(directory, dtype=torch.float32).eval()
  pad = published_checkpoints.published_config(name).get("pad_token_id") or 0
  return name, directory, model, torch_model, _batch(model, pad)


def test_loads_and_matches_transformers(published):
  name, directory, model, torch_model, (ids, mask, decoder_ids, compare) = published
  expected = _torch_outputs(torch_model, model, ids, mask, decoder_ids)
  actual = testing.our_forward(model, ids, mask, decoder_ids)
  assert actual.shape == expected.shape
  error = np.abs(actual[compare] - expected[compare]).max()
  assert error <= tolerance(model.config, expected[compare]), (name, error)
  assert model.tokenizer.get_vocab_size() <= model.config.vocab_size


def test_reads_published_sizes(published):
  name, _, model, torch_model, _ = published
  config = torch_model.config
  assert model.config.vocab_size == config.vocab_size
  assert getattr(model.config, "hidden_size", getattr(model.config, "d_model", None)) == \
      config.hidden_size
  assert model.config.num_heads == config.num_attention_heads
  assert model.config.num_layers == config.num_hidden_layers


def test_export_loads_in_transformers_without_duplicate_fields(published, tmp_path):
  name, directory, model, torch_model, (ids, mask, decoder_ids, compare) = published
  out = hf.save(model, tmp_path / "export")
  exported = json.loads((out / "config.json").read_text())
  for group in ALIAS_GROUPS:
    assert len(group & exported.keys()) <= 1, (name, sorted(group & exported.keys()))
  reloaded = AUTO[model.kind].from_pretrained(out).eval()
  assert type(reloaded).__name__ == type(torch_model).__name__ or model.kind == "encoder"
  assert reloaded.config.hidden_size == torch_model.config.hidden_size
  expected = _torch_outputs(torch_model, model, ids, mask, decoder_ids)
  again = _torch_outputs(reloaded, model, ids, mask, decoder_ids)
  # The same float32 weights through the same PyTorch code: equal up to kernel choice.
  np.testing.assert_allclose(again[compare], expected[compare], rtol=0,
                             atol=tolerance(model.config, expected[compare]))
  assert (out / "tokenizer.json").is_file()


# ---------------------------------------------------------------------------------------
# Layout and config errors: one line naming the file and what was expected.


def test_missing_tensor_names_file_and_tensor(tmp_path):
  from safetensors.numpy import load_file, save_file
  directory = published_checkpoints.write_checkpoint("mt0-base", tmp_path / "ckpt")
  tensors = load_file(directory / hf.SAFETENSORS)
  del tensors["shared.weight"]  # and no encoder/decoder.embed_tokens to fall back on
  save_file(tensors, directory / hf.SAFETENSORS, metadata={"format": "pt"})
  with pytest.raises(hf.CheckpointError) as error:
    hf.load(directory)
  message = str(error.value)
  assert "\n" not in message and "model.safetensors" in message and "'shared.weight'" in message


def _config_dir(tmp_path, text):
  directory = tmp_path / "cfg"
  directory.mkdir()
  (directory / "config.json").write_text(text)
  return directory


@pytest.mark.parametrize("text, pattern", [
    ('{"model_type": "gpt_neox"}', r"config\.json: unsupported model_type 'gpt_neox'; supported: .*'bloom'"),
    ('{"model_type": "bloom", "n_embed": 64, "hidden_size": 32}',
     r"config\.json: conflicting aliases \{'hidden_size': 32, 'n_embed': 64\}"),
    ('{"model_type": "bloom", "n_head": 4, "num_attention_heads": 8}',
     r"config\.json: conflicting aliases"),
    ('{"model_type": "bloom",', r"config\.json: not valid JSON"),
    ('["bloom"]', r"config\.json: expected a JSON object, got list"),
])
def test_bad_configs_are_one_line_errors(tmp_path, text, pattern):
  directory = _config_dir(tmp_path, text)
  with pytest.raises(hf.CheckpointError, match=pattern) as error:
    hf.build_module(directory)
  assert "\n" not in str(error.value)


def test_agreeing_aliases_are_accepted(tmp_path):
  config = published_checkpoints.published_config("bloomz-560m")
  config["hidden_size"] = config["n_embed"]
  module = hf.build_module(_config_dir(tmp_path, json.dumps(config)))
  assert module.config.hidden_size == config["n_embed"] and module.config.num_heads == 4


def test_stale_torch_dtype_beside_dtype_is_accepted(tmp_path):
  # Exports written before `hf.save` dropped torch_dtype carry both, disagreeing.
  config = {**published_checkpoints.published_config("Llama-3.2-1B"), "dtype": "float32"}
  module = hf.build_module(_config_dir(tmp_path, json.dumps(config)))
  assert module.config.rope_scaling is not None and module.config.tie_word_embeddings


def test_wrong_field_type_is_a_one_line_error(tmp_path):
  config = published_checkpoints.published_config("bloomz-560m")
  config["n_layer"] = "two"
  with pytest.raises(hf.CheckpointError, match=r"config\.json: transformers cannot read it") as error:
    hf.build_module(_config_dir(tmp_path, json.dumps(config)))
  assert "\n" not in str(error.value)


def test_unused_sentence_transformers_tensors_are_logged_not_errors(tmp_path, caplog):
  directory = published_checkpoints.write_checkpoint("LaBSE", tmp_path / "labse")
  with caplog.at_level("INFO"):
    model = hf.load(directory)
  assert model.config.with_pooler  # the pooler is read, position_ids ignored
  assert "embeddings.position_ids" in caplog.text
