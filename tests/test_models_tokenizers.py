"""SentencePiece-only checkpoints (mT5's spiece.model, no tokenizer.json) tokenize, score,
generate and feed SeqIO exactly as sentencepiece itself does."""

import shutil

import numpy as np
import pytest
import sentencepiece
import torch

from underrep_jax import errors
from underrep_jax.data import corpus_vocab
from underrep_jax.data import vocabularies
from underrep_jax.evaluation import generation
from underrep_jax.evaluation import model_loading
from underrep_jax.evaluation import scoring
from underrep_jax.models import hf
from underrep_jax.models import testing
from underrep_jax.models import tokenizer as tokenizer_lib
from tolerances import float32_tol  # tests/tolerances.py

CORPUS = [
    "Abdi resep pisan kana kadaharan Sunda di Bandung.",
    "Aku seneng mangan sega pecel karo tempe goreng.",
    "Saya suka makan nasi goreng di pagi hari bersama keluarga.",
    "Kucing itu tidur di atas kasur yang empuk sepanjang hari.",
    "The cat sits on the mat and watches the birds outside.",
    "Language models underperform on Buginese and Acehnese texts.",
    "Mereka pergi ke pasar kemarin sore untuk membeli sayur.",
    "Numbers like 3.14 and 2,718 also appear in text.",
] * 4
TEXTS = ["Saya suka kucing.", "abdi resep pisan", "The market sells rice\nand fish.",
         "Zebra quokka xylophone!", "  two  spaces ", "ok"]


@pytest.fixture(scope="module")
def spiece_checkpoint(tmp_path_factory):
  """A tiny mT5 whose only tokenizer is spiece.model (pad 0, eos 1, unk 2 as in mT5)."""
  work = tmp_path_factory.mktemp("spiece")
  vocab = vocabularies.train_sentencepiece(CORPUS, work / "sp", vocab_size=120,
                                           dummy_prefix=True)  # as mT5's spiece.model
  path = work / "mt5"
  torch_model = testing.save_tiny("mt5", path, vocab_size=128, decoder_start_token_id=0,
                                  pad_token_id=0, eos_token_id=1)
  shutil.copyfile(work / "sp.model", path / "spiece.model")
  assert not (path / "tokenizer.json").exists()
  processor = sentencepiece.SentencePieceProcessor(model_file=str(path / "spiece.model"))
  assert processor.get_piece_size() == vocab.vocab_size <= 128
  return path, torch_model, processor


def test_tokenizer_encodes_and_decodes_like_sentencepiece(spiece_checkpoint):
  path, _, processor = spiece_checkpoint
  tok = hf.load_tokenizer(path)
  assert tok.kind == "sentencepiece" and tok.file == path / "spiece.model"
  expected = processor.encode(TEXTS)
  assert tok.encode_ids(TEXTS) == expected
  assert any(processor.unk_id() in ids for ids in expected)  # unknown pieces are covered
  assert tok.decode_ids(expected) == [processor.decode(ids) for ids in expected]
  # Ids past the pieces (mT5 pads its embedding table) and EOS decode to nothing.
  assert tok.decode_ids([expected[0] + [1, 127]]) == [processor.decode(expected[0])]
  assert tok.vocab_size == processor.get_piece_size()
  assert tok.special_ids == {"pad": 0, "eos": 1, "bos": None, "unk": 2}


def test_transformers_slow_tokenizer_agrees(spiece_checkpoint):
  # transformers' own reading of spiece.model (T5Tokenizer, use_fast=False) gives the same
  # ids: the checkpoint means the same to it as to us.
  import transformers
  path, _, processor = spiece_checkpoint
  reference = transformers.AutoTokenizer.from_pretrained(path, use_fast=False,
                                                         tokenizer_type="t5")
  texts = [t for t in TEXTS if "\n" not in t and "  " not in t]
  assert hf.load_tokenizer(path).encode_ids(texts) == [
      reference(t, add_special_tokens=False)["input_ids"] for t in texts]


def test_seqio_vocabulary_reads_the_model_sentencepiece(spiece_checkpoint, tmp_path):
  path, _, processor = spiece_checkpoint
  for vocab in (vocabularies.load(path),
                corpus_vocab.resolve(str(path), "unused_mixture", tmp_path / "vocab")):
    assert vocab.vocab_size == processor.get_piece_size()
    assert (vocab.eos_id, vocab.unk_id, vocab.pad_id) == (1, 2, 0)
    for text, ids in zip(TEXTS, processor.encode(TEXTS)):
      assert list(vocab.encode(text)) == ids
      assert list(vocab.encode_tf(text).numpy()) == ids
  assert not (tmp_path / "vocab").exists()  # nothing trained


def test_scoring_with_spiece_only_equals_torch(spiece_checkpoint):
  path, torch_model, processor = spiece_checkpoint
  model = model_loading.load(str(path))
  prompts, answers = TEXTS[:3], [" kucing", " pasar ikan", " Sunda"]
  assert model_loading.encode(model, prompts) == processor.encode(prompts)
  out = scoring.Scorer(model, batch_size=2, length_multiple=8).score(prompts, answers)
  for i, prompt in enumerate(processor.encode(prompts)):
    for j, answer in enumerate(processor.encode(answers)):
      with torch.inference_mode():
        logits = torch_model(input_ids=torch.tensor([prompt]), labels=torch.tensor([answer])).logits
      lp = torch.log_softmax(logits[0].float(), -1).gather(-1, torch.tensor(answer)[:, None])
      # float32 through encoder and decoder (2 + 2 layers, MLP 4 * 64), a 128-way
      # log-softmax and a sum over the label tokens, relative to the summed log-prob.
      np.testing.assert_allclose(out["sum"][i, j], lp.sum().item(), rtol=0, atol=float32_tol(
          256, depth=5 + len(answer), scale=max(1.0, abs(lp.sum().item()))))


def test_generation_decodes_with_sentencepiece(spiece_checkpoint):
  path, _, processor = spiece_checkpoint
  model = model_loading.load(path)
  generator = generation.Generator(model, batch_size=2, max_new_tokens=6, length_multiple=8)
  ids = generator.generate_ids(processor.encode(TEXTS[:2]))
  texts = generator.generate(TEXTS[:2])
  assert texts == [processor.decode([i for i in row if i < processor.get_piece_size()]).strip()
                   for row in ids]


def test_fast_tokenizer_is_preferred(spiece_checkpoint, tmp_path):
  path, _, processor = spiece_checkpoint
  shutil.copytree(path, tmp_path / "both")
  vocabularies.sentencepiece_to_hf(vocabularies.load(path), tmp_path / "both")
  tok = hf.load_tokenizer(tmp_path / "both")
  assert tok.kind == "fast" and tok.special_ids["eos"] == 1
  assert tok.encode_ids(["Saya suka kucing."]) == processor.encode(["Saya suka kucing."])
  assert isinstance(vocabularies.load(tmp_path / "both"), vocabularies.HFTokenizerVocabulary)


def test_no_tokenizer_is_one_line_naming_the_files(tmp_path):
  testing.save_tiny("mt5", tmp_path, vocab_size=128)
  (tmp_path / "sentencepiece.bpe.model").write_bytes(b"")  # not read alone (fairseq ids)
  message = f"{tmp_path}: no tokenizer.json, spiece.model or tokenizer.model"
  with pytest.raises(FileNotFoundError) as error:
    hf.load(tmp_path).tokenizer
  assert str(error.value).startswith(message) and "\n" not in str(error.value)
  with pytest.raises(errors.ModelError, match="no tokenizer.json, spiece.model or tokenizer.model"):
    model_loading.resolve(tmp_path)
  with pytest.raises(vocabularies.DataError, match="spiece.model or tokenizer.model"):
    vocabularies.load(tmp_path)
  assert tokenizer_lib.find(tmp_path) is None
