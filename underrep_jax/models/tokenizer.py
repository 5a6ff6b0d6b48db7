"""A checkpoint's tokenizer, whatever kind it ships, behind one small interface.

Checkpoints carry a fast `tokenizer.json` (most) or only a SentencePiece model
(`spiece.model` for mT5/mT0, `tokenizer.model` for Llama-style models). Scoring,
generation and embedding need four things from either: texts -> ids without special
tokens, ids -> text, the vocabulary size and the special ids. A `tokenizer.json` is
preferred when present (it carries the full pipeline, added tokens included).

`sentencepiece.bpe.model` (XLM-R) is not read on its own: fairseq models shift its ids
and add tokens in front, so its raw ids are not the model's ids.
"""

import json
import pathlib

from underrep_jax import errors

FAST_FILE = "tokenizer.json"
SENTENCEPIECE_FILES = ("spiece.model", "tokenizer.model")
LOOKED_FOR = (FAST_FILE, *SENTENCEPIECE_FILES)
_SPECIAL_KEYS = ("pad", "eos", "bos", "unk")


def _token_text(value):
  return value.get("content") if isinstance(value, dict) else value


def _declared_tokens(directory: pathlib.Path) -> dict[str, str]:
  """{"eos": "</s>", ...} from tokenizer_config.json / special_tokens_map.json, if any."""
  out = {}
  for name in ("special_tokens_map.json", "tokenizer_config.json"):
    file = directory / name
    if file.is_file():
      config = json.loads(file.read_text(encoding="utf-8"))
      for key in _SPECIAL_KEYS:
        token = _token_text(config.get(f"{key}_token"))
        if isinstance(token, str):
          out[key] = token
  return out


class FastTokenizer:
  """A `tokenizers.Tokenizer` from tokenizer.json.

  Attributes it does not define (`encode_batch`, `no_padding`, `to_str`, ...) are the
  wrapped tokenizer's, so code written against `tokenizers.Tokenizer` keeps working.
  """
  kind = "fast"

  def __init__(self, file: pathlib.Path):
    import tokenizers
    self.file = file
    self.backend = tokenizers.Tokenizer.from_file(str(file))
    # Ids come from a copy without the checkpoint's own padding/truncation (MiniLM's pads
    # every text to 128), so callers get each text's real tokens.
    self._plain = tokenizers.Tokenizer.from_str(self.backend.to_str())
    self._plain.no_padding()
    self._plain.no_truncation()
    declared = _declared_tokens(file.parent)
    self.special_ids = {key: self.backend.token_to_id(declared[key]) if key in declared else None
                        for key in _SPECIAL_KEYS}

  def __getattr__(self, name):
    return getattr(self.__dict__["backend"], name)

  def encode_ids(self, texts) -> list[list[int]]:
    """Ids of each text, without special tokens, untruncated and unpadded."""
    return [e.ids for e in self._plain.encode_batch(list(texts), add_special_tokens=False)]

  def decode_ids(self, rows) -> list[str]:
    return self.backend.decode_batch([[int(i) for i in row] for row in rows],
                                     skip_special_tokens=True)

  @property
  def vocab_size(self) -> int:
    return self.backend.get_vocab_size(with_added_tokens=True)


class SentencePieceTokenizer:
  """A SentencePiece model (spiece.model / tokenizer.model) without a tokenizer.json."""
  kind = "sentencepiece"

  def __init__(self, file: pathlib.Path):
    import sentencepiece
    self.file = file
    try:
      self.backend = sentencepiece.SentencePieceProcessor(model_file=str(file))
    except (OSError, RuntimeError) as error:
      raise ValueError(f"{file}: not a SentencePiece model ({error})") from None
    sp = self.backend
    own = {"pad": sp.pad_id(), "eos": sp.eos_id(), "bos": sp.bos_id(), "unk": sp.unk_id()}
    declared = {key: sp.piece_to_id(token) for key, token in _declared_tokens(file.parent).items()}
    self.special_ids = {}
    for key in _SPECIAL_KEYS:
      value = declared.get(key, own[key])
      self.special_ids[key] = value if value is not None and value >= 0 else None

  def encode_ids(self, texts) -> list[list[int]]:
    """Ids of each text, without BOS/EOS (SentencePiece itself adds none by default)."""
    return self.backend.encode(list(texts))

  def decode_ids(self, rows) -> list[str]:
    # Ids past the pieces (mT5's padded embedding rows, T5's sentinels) have no text.
    size = self.vocab_size
    return [self.backend.decode([int(i) for i in row if 0 <= int(i) < size]) for row in rows]

  @property
  def vocab_size(self) -> int:
    return self.backend.get_piece_size()


def looked_for() -> str:
  """"tokenizer.json, spiece.model or tokenizer.model": the files `find` tries, in order."""
  return f"{', '.join(LOOKED_FOR[:-1])} or {LOOKED_FOR[-1]}"


def find(directory) -> pathlib.Path | None:
  """The tokenizer file to read in `directory`: tokenizer.json first, then SentencePiece."""
  directory = pathlib.Path(directory)
  for name in LOOKED_FOR:
    if (directory / name).is_file():
      return directory / name
  return None


class NoTokenizerError(errors.ModelError, FileNotFoundError):
  """A checkpoint directory without any tokenizer file this module reads."""


def load(directory):
  """The tokenizer of a checkpoint directory (fast or SentencePiece); one-line error if none."""
  file = find(directory) if directory is not None else None
  if file is None:
    raise NoTokenizerError(f"{directory}: no {looked_for()}, so this model has no tokenizer "
                            "(save the tokenizer files next to config.json)")
  if file.name == FAST_FILE:
    return FastTokenizer(file)
  return SentencePieceTokenizer(file)
