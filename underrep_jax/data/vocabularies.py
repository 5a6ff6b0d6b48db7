"""SeqIO vocabularies: any Hugging Face tokenizer, SentencePiece trained on our corpora,
and the job-wide active vocabulary that all registered tasks tokenize with.

Why an active vocabulary: every task is registered once, at import, but each job uses the
tokenizer of its own model. Tasks therefore name `ACTIVE`, a proxy, and a job binds the
model's tokenizer with `set_active(...)` before it builds datasets. Until then the proxy
is a byte-level vocabulary, so inspecting tasks needs no tokenizer files at all.
"""

from collections.abc import Iterable
import json
import logging
import os
import pathlib

import numpy as np
import seqio
import sentencepiece as spm
import tensorflow as tf
import tokenizers

from underrep_jax.data import noise
from underrep_jax.data.errors import DataError

_EOS_CANDIDATES = ("</s>", "<|endoftext|>", "<eos>", "<|end_of_text|>", "[SEP]")
_UNK_CANDIDATES = ("<unk>", "[UNK]", "<|unk|>")


def _token_text(value) -> str | None:
  if isinstance(value, dict):  # {"content": "</s>", ...} in tokenizer_config.json
    return value.get("content")
  return value


class HFTokenizerVocabulary(seqio.Vocabulary):
  """A seqio.Vocabulary over a Hugging Face `tokenizer.json` in a local directory.

  SeqIO reserves id 0 for padding; models see padding through masks and loss weights,
  so whatever token id 0 is in the HF vocabulary is never attended to or trained on.
  EOS comes from `tokenizer_config.json` (or a well-known end token).
  """

  def __init__(self, path: str | os.PathLike):
    path = pathlib.Path(path)
    self._dir = path if path.is_dir() else path.parent
    self._file = path / "tokenizer.json" if path.is_dir() else path
    if not self._file.is_file():
      raise DataError(f"{self._file}: no tokenizer.json in the model directory; copy the "
                      "tokenizer files next to config.json (slow tokenizers are not read)")
    self._tokenizer = tokenizers.Tokenizer.from_file(str(self._file))
    config = self._read_json("tokenizer_config.json")
    special = self._read_json("special_tokens_map.json")
    self._eos_id = self._special_id(config, special, "eos_token", _EOS_CANDIDATES)
    self._unk_id = self._special_id(config, special, "unk_token", _UNK_CANDIDATES)
    super().__init__(extra_ids=0)

  def _read_json(self, name: str) -> dict:
    f = self._dir / name
    return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else {}

  def _special_id(self, config: dict, special: dict, key: str,
                  candidates: tuple[str, ...]) -> int | None:
    for token in (_token_text(config.get(key)), _token_text(special.get(key)), *candidates):
      if token is not None and self._tokenizer.token_to_id(token) is not None:
        return self._tokenizer.token_to_id(token)
    return None

  @property
  def tokenizer(self) -> tokenizers.Tokenizer:
    return self._tokenizer

  @property
  def eos_id(self) -> int | None:
    return self._eos_id

  @property
  def unk_id(self) -> int | None:
    return self._unk_id

  @property
  def _base_vocab_size(self) -> int:
    return self._tokenizer.get_vocab_size(with_added_tokens=True)

  def _encode(self, s: str) -> list[int]:
    return self._tokenizer.encode(s, add_special_tokens=False).ids

  def _decode(self, ids) -> str:
    ids = [int(i) for i in ids if int(i) not in (self.pad_id, self.eos_id)]
    return self._tokenizer.decode(ids, skip_special_tokens=True)

  def _encode_tf(self, s: tf.Tensor) -> tf.Tensor:
    def encode(text) -> np.ndarray:
      text = text.item() if isinstance(text, np.ndarray) else text  # eager: 0-d array
      return np.asarray(self._encode(text.decode("utf-8")), dtype=np.int32)
    ids = tf.numpy_function(encode, [s], tf.int32, stateful=False)
    ids.set_shape([None])
    return ids

  def _decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
    def decode(batch: np.ndarray) -> np.ndarray:
      rows = batch.reshape(-1, batch.shape[-1]) if batch.ndim else batch.reshape(1, 1)
      texts = [self.decode(row.tolist()).encode("utf-8") for row in rows]
      return np.asarray(texts, dtype=object).reshape(batch.shape[:-1])
    out = tf.numpy_function(decode, [ids], tf.string, stateful=False)
    out.set_shape(ids.shape[:-1])
    return out

  def __eq__(self, other) -> bool:
    return isinstance(other, HFTokenizerVocabulary) and other._file == self._file

  def __hash__(self) -> int:
    return hash(str(self._file))

  def __repr__(self) -> str:
    return f"HFTokenizerVocabulary({str(self._dir)!r})"


def train_sentencepiece(texts: Iterable[str], model_prefix: str | os.PathLike,
                        vocab_size: int = 8000,
                        model_type: str = "unigram",
                        dummy_prefix: bool = False) -> seqio.SentencePieceVocabulary:
  """Trains a SentencePiece model for from-scratch models, with SeqIO's id layout.

  pad=0, eos=1, unk=2 and no BOS (what SeqIO and T5-style models expect). The noise
  blank marker and the newline are user-defined pieces, so infilled words stay one token
  and prompts keep their line breaks (plain NFKC, not the NMT rule that maps newlines
  to spaces). No dummy prefix: a leading space belongs to the word after it, as in
  byte-level BPE, so a target " positive" tokenized on its own (SeqIO tokenizes inputs
  and targets separately) is the same "▁positive" the joined prompt + answer has; with
  SentencePiece's default dummy prefix it would be "▁", "▁positive", a token the model
  learns to predict first and that scoring (which joins prompt and answer) never asks
  for (`dummy_prefix=True` makes one the way mT5's and Llama's are). Training
  is single-threaded on the texts in the given order, so the same texts give the same
  model. `vocab_size` is an upper bound: small corpora get fewer pieces.
  """
  model_prefix = pathlib.Path(model_prefix)
  model_prefix.parent.mkdir(parents=True, exist_ok=True)
  texts = [t for t in texts if t.strip()]
  if not texts:
    raise DataError("train_sentencepiece: no non-empty texts to train on")
  # Trained under a temporary prefix and renamed: a run killed (or out of disk) while the
  # files are written never leaves a truncated .model that a restart would trust.
  tmp_prefix = model_prefix.with_name(f".{model_prefix.name}.tmp-{os.getpid()}")
  try:
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_prefix=str(tmp_prefix), vocab_size=vocab_size,
        model_type=model_type, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        user_defined_symbols=[noise.BLANK, "\n"], normalization_rule_name="nfkc",
        remove_extra_whitespaces=False, add_dummy_prefix=dummy_prefix, character_coverage=1.0,
        hard_vocab_limit=False,
        num_threads=1, shuffle_input_sentence=False, minloglevel=2)
    for suffix in (".vocab", ".model"):  # the .model last: its presence means complete
      tmp = pathlib.Path(f"{tmp_prefix}{suffix}")
      with open(tmp, "rb") as f:
        os.fsync(f.fileno())
      os.replace(tmp, f"{model_prefix}{suffix}")
  finally:
    for suffix in (".vocab", ".model"):
      pathlib.Path(f"{tmp_prefix}{suffix}").unlink(missing_ok=True)
  logging.info("Trained SentencePiece model %s.model on %d texts", model_prefix, len(texts))
  return seqio.SentencePieceVocabulary(str(model_prefix) + ".model")


def sentencepiece_problem(path: str | os.PathLike) -> str | None:
  """Why the SentencePiece model at `path` does not load (None when it does).

  seqio loads a model lazily, at the first encode, and its error ("Wire format was
  corrupt") names no file; callers check first and name it.
  """
  try:
    spm.SentencePieceProcessor(model_file=str(path))
  except (OSError, RuntimeError) as e:
    return str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
  return None


def _sentencepiece_file(path: pathlib.Path) -> seqio.SentencePieceVocabulary:
  """A SentencePiece vocabulary from a .model file that is checked to load."""
  problem = sentencepiece_problem(path)
  if problem:
    raise DataError(f"{path}: not a readable SentencePiece model ({problem}); truncated "
                    "or not a .model file?")
  return seqio.SentencePieceVocabulary(str(path))


def sentencepiece_to_hf(vocabulary: seqio.SentencePieceVocabulary,
                        out_dir: str | os.PathLike) -> pathlib.Path:
  """Writes a `tokenizer.json` that tokenizes exactly like a `train_sentencepiece` model.

  Exported checkpoints carry it, so transformers and every tool of this project load the
  from-scratch model's tokenizer like any Hugging Face one. The Unigram pieces and scores
  are copied; normalisation (NFKC, spaces to "▁", the dummy prefix when the model adds
  one) and the user-defined pieces (blank marker, newline) follow the SentencePiece
  model's own settings. (With a dummy prefix, a text that starts with a space differs:
  SentencePiece gives "▁", "▁word", Hugging Face's Metaspace "▁word"; the models
  `train_sentencepiece` makes now have none.)
  """
  from sentencepiece import sentencepiece_model_pb2
  sp = vocabulary.tokenizer
  proto = sentencepiece_model_pb2.ModelProto()
  proto.ParseFromString(sp.serialized_model_proto())
  dummy_prefix = proto.normalizer_spec.add_dummy_prefix
  pieces = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
  tok = tokenizers.Tokenizer(tokenizers.models.Unigram(pieces, unk_id=sp.unk_id(),
                                                       byte_fallback=False))
  scheme = "first" if dummy_prefix else "never"
  tok.normalizer = tokenizers.normalizers.Sequence([
      tokenizers.normalizers.NFKC(), tokenizers.normalizers.Replace(" ", "▁")])
  tok.pre_tokenizer = tokenizers.pre_tokenizers.Metaspace(replacement="▁",
                                                          prepend_scheme=scheme, split=False)
  tok.decoder = tokenizers.decoders.Metaspace(replacement="▁", prepend_scheme=scheme,
                                              split=False)
  specials = {"pad_token": sp.pad_id(), "eos_token": sp.eos_id(), "unk_token": sp.unk_id()}
  tok.add_special_tokens([tokenizers.AddedToken(sp.id_to_piece(i), special=True)
                          for i in sorted(specials.values())])
  tok.add_tokens([tokenizers.AddedToken(piece, normalized=False)
                  for piece in (noise.BLANK, "\n")])
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  tok.save(str(out_dir / "tokenizer.json"))
  config = {name: sp.id_to_piece(i) for name, i in specials.items()}
  config["tokenizer_class"] = "PreTrainedTokenizerFast"
  (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
  return out_dir / "tokenizer.json"


def load(path: str | os.PathLike) -> seqio.Vocabulary:
  """A vocabulary from a SentencePiece `.model` file, an HF tokenizer directory/file or a
  Hub id (`org/name`, see `models.hub`).

  A model directory is read as its tokenizer would be (`models.tokenizer`): tokenizer.json
  when present, else its SentencePiece model (mT5's spiece.model, Llama's tokenizer.model),
  whose ids are the model's own.
  """
  from underrep_jax.models import hub
  from underrep_jax.models import tokenizer as tokenizer_lib
  path = hub.resolve(path)
  if path.suffix == ".model" and path.is_file():
    return _sentencepiece_file(path)
  if path.is_dir():
    file = tokenizer_lib.find(path)
    if file is None:
      raise DataError(f"{path}: no {tokenizer_lib.looked_for()} in the model directory; "
                      "copy the tokenizer files next to config.json")
    if file.suffix == ".model":
      return _sentencepiece_file(file)
  return HFTokenizerVocabulary(path)


class ActiveVocabulary(seqio.Vocabulary):
  """Forwards everything to the vocabulary the current job bound with `set_active`."""

  def __init__(self, default: seqio.Vocabulary):
    self._default = default
    self._active = default
    super().__init__(extra_ids=0)

  @property
  def active(self) -> seqio.Vocabulary:
    return self._active

  def bind(self, vocabulary: seqio.Vocabulary | None) -> None:
    self._active = vocabulary if vocabulary is not None else self._default

  @property
  def bos_id(self):
    return self._active.bos_id

  @property
  def eos_id(self):
    return self._active.eos_id

  @property
  def unk_id(self):
    return self._active.unk_id

  @property
  def pad_id(self):
    return self._active.pad_id

  @property
  def extra_ids(self):
    return self._active.extra_ids

  @property
  def vocab_size(self):
    return self._active.vocab_size

  @property
  def _base_vocab_size(self):
    return self._active._base_vocab_size  # pylint: disable=protected-access

  def encode(self, s):
    return self._active.encode(s)

  def decode(self, ids):
    return self._active.decode(ids)

  def encode_tf(self, s):
    return self._active.encode_tf(s)

  def decode_tf(self, ids):
    return self._active.decode_tf(ids)

  def _encode(self, s):
    return self._active.encode(s)

  def _decode(self, ids):
    return self._active.decode(ids)

  def _encode_tf(self, s):
    return self._active.encode_tf(s)

  def _decode_tf(self, ids):
    return self._active.decode_tf(ids)

  def __repr__(self) -> str:
    return f"ActiveVocabulary({self._active!r})"


ACTIVE = ActiveVocabulary(default=seqio.ByteVocabulary())


def set_active(vocabulary: seqio.Vocabulary | None) -> None:
  """Binds the vocabulary every registered task tokenizes with (None: bytes)."""
  ACTIVE.bind(vocabulary)
