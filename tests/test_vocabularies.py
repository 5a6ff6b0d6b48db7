"""Vocabularies: HF tokenizer.json through SeqIO, SentencePiece training, the active proxy."""

import json

import numpy as np
import pytest
import seqio
import tensorflow as tf
import tokenizers
from tokenizers import models, pre_tokenizers, trainers

from underrep_jax.data import readers
from underrep_jax.data import vocabularies
from underrep_jax.data.errors import DataError

SENTENCES = ["Abdi badé ka pasar énjing.", "Kula arep menyang pasar sesuk esuk.",
             "Turkey is encircled by seas on three sides.", "Naon ___ ieu?\nTeu terang."]


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
  """A real byte-level BPE tokenizer trained on NusaX, saved the way HF checkpoints are."""
  texts = [r["text"] for r in readers.nusax_sentiment("sun", "train")]
  tok = tokenizers.Tokenizer(models.BPE(unk_token="<unk>"))
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = tokenizers.decoders.ByteLevel()
  tok.train_from_iterator(texts, trainers.BpeTrainer(
      vocab_size=600, special_tokens=["<pad>", "<unk>", "</s>"],
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
  path = tmp_path_factory.mktemp("hf")
  tok.save(str(path / "tokenizer.json"))
  (path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
  return path


def test_hf_vocabulary_matches_the_tokenizer(hf_dir):
  vocab = vocabularies.HFTokenizerVocabulary(hf_dir)
  tok = tokenizers.Tokenizer.from_file(str(hf_dir / "tokenizer.json"))
  assert vocab.eos_id == tok.token_to_id("</s>") == 2
  assert vocab.vocab_size == tok.get_vocab_size()
  for text in SENTENCES:
    ids = vocab.encode(text)
    assert ids == tok.encode(text, add_special_tokens=False).ids
    assert vocab.decode(ids) == text
    tf_ids = vocab.encode_tf(tf.constant(text)).numpy().tolist()
    assert tf_ids == ids
    assert vocab.decode_tf(tf.constant([ids + [vocab.eos_id, 0, 0]])).numpy()[0].decode() == text


def test_hf_vocabulary_needs_tokenizer_json(tmp_path):
  with pytest.raises(DataError, match="no tokenizer.json"):
    vocabularies.HFTokenizerVocabulary(tmp_path)


def test_sentencepiece_training_is_deterministic_and_keeps_markers(tmp_path):
  texts = [r["text"] for r in readers.nusax_sentiment("jav", "train")]
  a = vocabularies.train_sentencepiece(texts, tmp_path / "a" / "spm", vocab_size=800)
  b = vocabularies.train_sentencepiece(texts, tmp_path / "b" / "spm", vocab_size=800)
  def pieces(v):
    sp = v.tokenizer
    return [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
  assert pieces(a) == pieces(b)  # same texts, same model (the files differ only by path)
  assert a.pad_id == 0 and a.eos_id == 1 and a.unk_id == 2
  text = "Panganane enak ___ regane mirah.\nApik."
  assert a.decode(a.encode(text)) == text
  blank = a.tokenizer.piece_to_id("___")
  assert a.tokenizer.piece_to_id("\n") != a.unk_id
  assert a.encode("kula ___ sampeyan ___").count(blank) == 2


def test_active_vocabulary_switches_what_tasks_tokenize_with(hf_dir):
  import tasks  # noqa: F401
  task = seqio.get_mixture_or_task("nusax_senti_sun")
  def first_targets():
    ds = task.get_dataset(sequence_length=None, split="test", shuffle=False, num_epochs=1)
    return next(ds.as_numpy_iterator())["targets"].tolist()
  as_bytes = first_targets()
  hf = vocabularies.HFTokenizerVocabulary(hf_dir)
  vocabularies.set_active(hf)
  try:
    as_bpe = first_targets()
  finally:
    vocabularies.set_active(None)
  assert as_bytes == seqio.ByteVocabulary().encode(" " + readers.nusax_sentiment(
      "sun", "test")[0]["label"]) + [1]
  assert as_bpe[-1] == hf.eos_id and as_bpe[:-1] == hf.encode(as_bpe and hf.decode(as_bpe[:-1]))
  assert as_bpe != as_bytes
  assert isinstance(vocabularies.ACTIVE.active, seqio.ByteVocabulary)


# Answers are scored after their prompt: " positive" must be one word-initial piece on
# its own as it is after "Sentiment:", or training (SeqIO tokenizes targets alone) and
# scoring (prompt and answer joined) would disagree about the first answer token.
SPACED = [" positive", "  two spaces", " neutral\n", "Sentiment: positive", " ___ yes"]


def test_sentencepiece_tokenizes_an_answer_alone_as_after_its_prompt(tmp_path):
  texts = [r["text"] + "\nSentiment: positive" for r in readers.nusax_sentiment("ind", "train")]
  spm_vocab = vocabularies.train_sentencepiece(texts, tmp_path / "spm", vocab_size=800)
  prompt, answer = "Kalimat ini bagus.\nSentiment:", " positive"
  assert spm_vocab.encode(prompt) + spm_vocab.encode(answer) == spm_vocab.encode(prompt + answer)
  assert len(spm_vocab.encode(answer)) == 1


@pytest.mark.parametrize("dummy_prefix", [False, True])
def test_sentencepiece_exports_an_identical_hf_tokenizer(tmp_path, dummy_prefix):
  import transformers
  texts = [r["text"] + "\nQ: ___ yes" for r in readers.nusax_sentiment("sun", "train")]
  spm_vocab = vocabularies.train_sentencepiece(texts, tmp_path / "spm", vocab_size=1000,
                                               dummy_prefix=dummy_prefix)
  vocabularies.sentencepiece_to_hf(spm_vocab, tmp_path / "hf")
  hf = vocabularies.HFTokenizerVocabulary(tmp_path / "hf")
  assert (hf.eos_id, hf.unk_id) == (spm_vocab.eos_id, spm_vocab.unk_id)
  held_out = [r["text"] for r in readers.nusax_sentiment("jav", "test")] + SENTENCES
  spaced = SPACED if not dummy_prefix else [t for t in SPACED if not t.startswith(" ")]
  for text in texts[:200] + held_out + spaced:
    ids = spm_vocab.encode(text)
    assert hf.encode(text) == ids, text
    if spm_vocab.unk_id not in ids and not text.startswith(" "):
      # (unknown pieces decode as " ⁇ " in SentencePiece only; both drop a leading space)
      assert hf.decode(ids) == spm_vocab.decode(ids) == text
  fast = transformers.PreTrainedTokenizerFast.from_pretrained(str(tmp_path / "hf"))
  assert fast.eos_token == "</s>" and fast.pad_token_id == 0
  assert fast(SENTENCES[3], add_special_tokens=False)["input_ids"] == spm_vocab.encode(SENTENCES[3])
