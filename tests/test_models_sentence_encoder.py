"""Sentence-transformers directories embed exactly as sentence_transformers itself does:
pooling (mean / cls / max / mean_sqrt_len), Dense layers, Normalize, max_seq_length and
do_lower_case all follow the directory's own pipeline."""

import dataclasses
import json
import math
import shutil

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers import models as st_models

from underrep_jax.evaluation import retrieval
from underrep_jax.models import hf
from underrep_jax.models import sentence_encoder
from underrep_jax.models import testing

EPS = float(np.finfo(np.float32).eps)
TEXTS = [
    "The cat sits on the mat.",
    "Saya suka makan nasi goreng di pagi hari.",
    "ABDI RESEP PISAN kana kadaharan Sunda.",
    "Hi.",
    "A considerably longer sentence that keeps going, listing apples, pears, plums, grapes, "
    "mangoes, durians, rambutans and many other fruits sold at the morning market in town.",
    "Numbers like 3.14159 and 2,718 also appear in text.",
    "ok",
]


def _tolerance(widths: int, layers: int, scale: float = 1.0) -> float:
  # Rounding in a float32 dot product of length n grows like sqrt(n) * eps (a random walk
  # of per-add errors); each layer adds its own. `widths` sums one layer's reduction
  # lengths (hidden, FFN, attended tokens); 4x margin; `scale`: the outputs' magnitude.
  return 4 * EPS * layers * math.sqrt(widths) * scale


def _tiny_bert(path, **overrides):
  """A tiny random BERT with all-MiniLM-L6-v2's WordPiece tokenizer (30522 ids)."""
  testing.save_tiny("bert", path, vocab_size=30522, **overrides)
  for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
               "special_tokens_map.json"):
    shutil.copyfile(hf.minilm_path() / name, path / name)
  return path


def _tiny_xlmr(path):
  """A tiny random XLM-R (pad 1) with a byte-level BPE tokenizer wrapping <s> ... </s>."""
  import tokenizers
  from tokenizers import decoders, models, pre_tokenizers, processors, trainers
  testing.save_tiny("xlm-roberta", path, vocab_size=384)
  tok = tokenizers.Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                show_progress=False)
  tok.train_from_iterator(TEXTS * 3, trainer)
  tok.post_processor = processors.TemplateProcessing(
      single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
  tok.save(str(path / "tokenizer.json"))
  config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>",
            "eos_token": "</s>", "cls_token": "<s>", "sep_token": "</s>", "pad_token": "<pad>",
            "unk_token": "<unk>", "model_max_length": 512}
  (path / "tokenizer_config.json").write_text(json.dumps(config))
  return path


def _save_st(out, transformer_dir, pooling, dense=None, normalize=False, **transformer_kwargs):
  torch.manual_seed(0)
  transformer = st_models.Transformer(str(transformer_dir), **transformer_kwargs)
  modules = [transformer, st_models.Pooling(transformer.get_embedding_dimension(),
                                            pooling_mode=pooling)]
  if dense:
    modules.append(st_models.Dense(64, dense, activation_function=torch.nn.Tanh()))
    with torch.no_grad():  # random, visibly non-zero bias
      modules[-1].linear.bias.normal_()
  if normalize:
    modules.append(st_models.Normalize())
  SentenceTransformer(modules=modules, device="cpu").save(str(out))
  return out


def _reference(directory, texts=TEXTS):
  model = SentenceTransformer(str(directory), device="cpu", local_files_only=True)
  return model.encode(texts, batch_size=3, convert_to_numpy=True), model


LAYOUTS = {
    # name: (base, pooling, dense width, Normalize, Transformer kwargs)
    "mean": ("bert", "mean", None, False, dict(max_seq_length=24)),
    "labse_like": ("bert", "cls", 32, True, {}),
    "max": ("xlmr", "max", None, False, dict(max_seq_length=48)),
    "mean_sqrt_len": ("xlmr", "mean_sqrt_len_tokens", None, True, dict(max_seq_length=16)),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_layout_embeds_like_sentence_transformers(tmp_path, layout):
  base, pooling, dense, normalize, kwargs = LAYOUTS[layout]
  make = _tiny_bert if base == "bert" else _tiny_xlmr
  directory = _save_st(tmp_path / "st", make(tmp_path / base), pooling, dense, normalize,
                       **kwargs)
  expected, reference = _reference(directory)

  transformer_dir, head = sentence_encoder.read_head(directory)
  assert transformer_dir == directory and head.pooling == (pooling,)
  assert head.normalize == normalize and len(head.dense) == (1 if dense else 0)
  assert head.max_seq_length == reference.max_seq_length
  ours = sentence_encoder.SentenceEncoder(directory, batch_size=4)(TEXTS)
  assert ours.shape == expected.shape == (len(TEXTS), dense or 64)
  # 2 layers; one layer reduces over 64 (hidden) + 128 (FFN) + <=32 tokens (+64 for Dense).
  scale = float(np.abs(expected).max())
  np.testing.assert_allclose(ours, expected, rtol=0, atol=_tolerance(64 + 128 + 32 + 64, 3, scale))
  if layout == "mean":  # the longest text is cut at max_seq_length=24, as ST cuts it
    untruncated = sentence_encoder.SentenceEncoder(directory, max_length=64)(TEXTS[4:5])
    assert np.abs(untruncated[0] - ours[4]).max() > 100 * _tolerance(288, 3, scale)


def test_legacy_pooling_config_and_pickled_dense(tmp_path):
  directory = _save_st(tmp_path / "st", _tiny_bert(tmp_path / "bert"), "cls", 32, True)
  config_file = directory / "1_Pooling" / "config.json"
  config = json.loads(config_file.read_text())  # the ST <= 5 way of writing it
  (config_file).write_text(json.dumps({
      "word_embedding_dimension": config["embedding_dimension"], "pooling_mode_cls_token": True,
      "pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": False,
      "pooling_mode_mean_sqrt_len_tokens": False}))
  assert sentence_encoder.read_head(directory)[1].pooling == ("cls",)
  dense_dir = directory / "2_Dense"
  from safetensors.torch import load_file
  torch.save(load_file(dense_dir / "model.safetensors"), dense_dir / "pytorch_model.bin")
  (dense_dir / "model.safetensors").unlink()
  with pytest.raises(sentence_encoder.SentenceEncoderError,
                     match=f"python -m underrep_jax.models.convert {dense_dir}"):
    sentence_encoder.read_head(directory)
  from underrep_jax.models import convert  # the command the message names makes it load
  convert.convert(dense_dir)
  np.testing.assert_array_equal(sentence_encoder.read_head(directory)[1].dense[0].kernel.T,
                                torch.load(dense_dir / "pytorch_model.bin")["linear.weight"])
  (config_file).write_text(json.dumps({"pooling_mode": "weightedmean"}))
  with pytest.raises(sentence_encoder.SentenceEncoderError, match="weightedmean.*not supported"):
    sentence_encoder.read_head(directory)


def test_legacy_transformer_config_cuts_and_lowercases(tmp_path):
  # ST <= 5 kept max_seq_length and do_lower_case in sentence_bert_config.json (ST 6 puts
  # them into the tokenizer files); a case-sensitive tokenizer shows the lowercasing.
  directory = _save_st(tmp_path / "st", _tiny_xlmr(tmp_path / "xlmr"), "mean")
  (directory / "sentence_bert_config.json").write_text(
      json.dumps({"max_seq_length": 20, "do_lower_case": True}))
  head = sentence_encoder.read_head(directory)[1]
  assert (head.max_seq_length, head.do_lower_case) == (20, True)
  expected, reference = _reference(directory)
  assert reference.max_seq_length == 20
  encoder = sentence_encoder.SentenceEncoder(directory)
  ours = encoder(TEXTS)
  scale = float(np.abs(expected).max())
  np.testing.assert_allclose(ours, expected, rtol=0, atol=_tolerance(64 + 128 + 32, 2, scale))
  cased = sentence_encoder.Embedder(encoder.model.module, encoder.model.tokenizer, 20, 8, 1,
                                    dataclasses.replace(head, do_lower_case=False))
  assert np.abs(cased(encoder.model.params, TEXTS[2:3])[0] - ours[2]).max() > (
      100 * _tolerance(224, 2, scale))


def test_minilm_directory_embeds_like_sentence_transformers():
  # The package ships the full ST directory (modules.json, 1_Pooling, Normalize).
  directory = hf.minilm_path()
  assert (directory / "modules.json").is_file() and (directory / "1_Pooling").is_dir()
  transformer_dir, head = sentence_encoder.read_head(directory)
  assert head == sentence_encoder.Head(pooling=("mean",), normalize=True, max_seq_length=256)
  expected, _ = _reference(directory)
  ours = retrieval.DenseEncoder(directory, batch_size=4)(TEXTS)
  # 6 layers; one reduces over 384 (hidden) + 1536 (FFN) + <=64 tokens; unit vectors.
  np.testing.assert_allclose(ours, expected, rtol=0, atol=_tolerance(384 + 1536 + 64, 6))


def test_plain_encoder_directory_is_mean_and_normalized(tmp_path):
  path = _tiny_bert(tmp_path / "bert")
  transformer_dir, head = sentence_encoder.read_head(path)
  assert transformer_dir == path and head == sentence_encoder.MEAN_NORMALIZED
  model = hf.load(path)
  # (MiniLM's tokenizer.json pads to 128, past this tiny model's 64 positions: unpadded copy)
  tokens = sentence_encoder.text_tokenizer(model.tokenizer, 32).encode("Saya suka kucing.")
  ids = np.asarray([tokens.ids], np.int32)
  np.testing.assert_allclose(
      sentence_encoder.SentenceEncoder(path, max_length=32)(["Saya suka kucing."])[0],
      np.asarray(model.embed(ids, np.ones_like(ids), normalize=True))[0],
      rtol=0, atol=_tolerance(64 + 128 + 32, 2))


def test_unsupported_module_is_one_line(tmp_path):
  (tmp_path / "modules.json").write_text(json.dumps([
      {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
      {"idx": 1, "name": "1", "path": "1_CNN", "type": "sentence_transformers.models.CNN"}]))
  with pytest.raises(sentence_encoder.SentenceEncoderError) as error:
    sentence_encoder.read_head(tmp_path)
  assert "sentence_transformers.models.CNN" in str(error.value) and "\n" not in str(error.value)
