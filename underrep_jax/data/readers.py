"""Readers for NusaX, NusaWrites (NusaTranslation, NusaParagraph) and SIB-200 / FLORES.

Each reader returns a list of plain dicts with str values, in file order, each with an
"id". Splits are called "train", "validation" and "test" everywhere; the readers map
them onto the upstream file names ("valid", "dev"). Files come from `sources.resolve`,
so the same code reads a local data directory or the pinned downloads.

Bad input raises `DataError` naming the file, the row and the field. Rows are counted
as in a spreadsheet: the header is row 1 and the first data row is row 2; a row is one
CSV record, so a text with line breaks is still one row. Nothing is dropped silently:
the only rows skipped on purpose are blank lines and lexicon entries without a word,
and those are counted and logged.
"""

import collections
from collections.abc import Iterable, Sequence
import csv
import functools
import pathlib
import re

from absl import logging

from underrep_jax.data import languages
from underrep_jax.data import sources
from underrep_jax.data.errors import DataError

Row = dict[str, str]

LABELS: dict[str, tuple[str, ...]] = {
    "nusax_senti": ("negative", "neutral", "positive"),
    "nusatranslation_senti": ("negative", "positive"),
    "nusaparagraph_emot": ("angry", "disgusted", "fear", "happy", "sad", "shame", "surprise"),
    "nusaparagraph_topic": ("business", "culture & heritage", "food & beverages", "leisures",
                            "religion", "slice of life", "sports", "technology"),
    # Order of SIB-200's labels.txt.
    "sib200_topic": ("science/technology", "travel", "politics", "sports", "health",
                     "entertainment", "geography"),
}

SPLITS = ("train", "validation", "test")
_NUSA_SPLITS = {"train": "train", "validation": "valid", "test": "test"}
_SIB_SPLITS = {"train": "train", "validation": "dev", "test": "test"}
PARAGRAPH_TASKS = ("emot", "topic")
FLORES_ALL = "all"

DATASETS = ("nusax_senti", "nusax_mt", "nusatranslation_senti", "nusatranslation_mt",
            "nusaparagraph_emot", "nusaparagraph_topic", "sib200_topic", "flores")

_HEADER_ROW = 1


class _Table:
  """A parsed delimited file: its header and records, with spreadsheet row numbers."""

  def __init__(self, path: pathlib.Path, header: tuple[str, ...],
               records: tuple[tuple[int, tuple[str, ...]], ...]):
    self.path = path
    self.header = header
    self.records = records  # (row number, values), header = row 1

  def error(self, row: int, field: str, problem: str) -> DataError:
    where = "row 1 (the header)" if row == _HEADER_ROW else f"row {row}"
    return DataError(f"{self.path}, {where}, field {field!r}: {problem} "
                     "(rows counted with the header as row 1)")

  def require_columns(self, columns: Iterable[str]) -> None:
    for column in columns:
      if column not in self.header:
        raise self.error(_HEADER_ROW, column, f"missing column; the header has "
                         f"{list(self.header)}")

  def rows(self) -> Iterable[tuple[int, dict[str, str]]]:
    """(row number, {column: value}) in file order."""
    for row_number, values in self.records:
      yield row_number, dict(zip(self.header, values))


@functools.lru_cache(maxsize=512)
def _parse_cached(path: pathlib.Path, delimiter: str, mtime_ns: int, size: int) -> _Table:
  del mtime_ns, size  # Part of the cache key only: a rewritten file is parsed again.
  line = 0  # Physical line, for errors the csv module raises before a row is complete.
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:
      reader = csv.reader(f, delimiter=delimiter, strict=True)
      header = tuple(next(reader, ()))
      if not header:
        raise DataError(f"{path}, row 1: empty file, expected a header row")
      records = []
      blank_rows = 0
      line = reader.line_num
      for row_number, values in enumerate(reader, start=_HEADER_ROW + 1):
        line = reader.line_num
        if not values:
          blank_rows += 1
          continue
        if len(values) != len(header):
          raise DataError(f"{path}, row {row_number}: {len(values)} fields, but the header "
                          f"has {len(header)} {list(header)} (rows counted with the header "
                          "as row 1)")
        records.append((row_number, tuple(values)))
  except UnicodeDecodeError as e:
    raise DataError(f"{path}: not valid UTF-8 ({e})") from e
  except csv.Error as e:
    raise DataError(f"{path}, after line {line}: malformed CSV ({e})") from e
  if blank_rows:
    logging.warning("%s: skipped %d blank line(s)", path, blank_rows)
  return _Table(path, header, tuple(records))


def _parse(path: pathlib.Path, delimiter: str = ",") -> _Table:
  """Parses a CSV/TSV file once per process (readers are called again every epoch)."""
  try:
    stat = path.stat()
  except OSError as e:
    raise DataError(f"cannot read data file {path}: {e}") from e
  return _parse_cached(path, delimiter, stat.st_mtime_ns, stat.st_size)


def _text(table: _Table, row: int, values: dict[str, str], field: str) -> str:
  value = values[field]
  if not value.strip():
    raise table.error(row, field, "empty text")
  return value


def _label(table: _Table, row: int, values: dict[str, str], field: str,
           label_set: Sequence[str]) -> str:
  value = values[field]
  if value not in label_set:
    raise table.error(row, field, f"unknown label {value!r}; expected one of "
                      f"{list(label_set)}")
  return value


def _unique_id(table: _Table, row: int, values: dict[str, str], field: str,
               seen: dict[str, int]) -> str:
  value = values[field]
  if not value.strip():
    raise table.error(row, field, "empty id")
  if value in seen:
    raise table.error(row, field, f"duplicate id {value!r} (first in row {seen[value]})")
  seen[value] = row
  return value


def _split(split: str, mapping: dict[str, str]) -> str:
  if split not in mapping:
    raise DataError(f"unknown split {split!r}; expected one of {list(mapping)}")
  return mapping[split]


def _classification_rows(table: _Table, language: str, label_set: Sequence[str],
                         id_field: str = "id", text_field: str = "text",
                         label_field: str = "label") -> list[Row]:
  table.require_columns((id_field, text_field, label_field))
  seen: dict[str, int] = {}
  out = []
  for row, values in table.rows():
    out.append({
        "id": _unique_id(table, row, values, id_field, seen),
        "text": _text(table, row, values, text_field),
        "label": _label(table, row, values, label_field, label_set),
        "language": language,
    })
  return out


def _pair_row(row_id: str, source: str, target: str, source_language: str,
              target_language: str) -> Row:
  return {"id": row_id, "source": source, "target": target,
          "source_language": source_language, "target_language": target_language}


def _require_available(dataset: str, lang: str) -> languages.Language:
  language = languages.get(lang)
  available = available_languages(dataset)
  if lang not in available:
    raise DataError(f"{dataset}: no data for language {lang!r} ({language.english_name}); "
                    f"available: {', '.join(available)}")
  return language


def _require_pair(dataset: str, src: str, tgt: str) -> None:
  _require_available(dataset, src)
  _require_available(dataset, tgt)
  if src == tgt:
    raise DataError(f"{dataset}: source and target are both {src!r}; expected two "
                    "different languages")


# NusaX ------------------------------------------------------------------------------


def nusax_sentiment(lang: str, split: str) -> list[Row]:
  """NusaX sentiment: {id, text, label, language}; 500/100/400 rows per language."""
  folder = _require_available("nusax_senti", lang).nusax_folder
  path = sources.resolve(
      "nusax", f"datasets/sentiment/{folder}/{_split(split, _NUSA_SPLITS)}.csv")
  return _classification_rows(_parse(path), lang, LABELS["nusax_senti"])


def nusax_mt(split: str) -> list[Row]:
  """NusaX-MT: {id, <code>: text} for all 12 languages; rows are translations.

  The header names languages by NusaX folder ("toba_batak"); the rows use ISO codes.
  The first, unnamed column is the row index and becomes the id.
  """
  path = sources.resolve("nusax", f"datasets/mt/{_split(split, _NUSA_SPLITS)}.csv")
  table = _parse(path)
  id_field = ""
  table.require_columns([id_field] + [languages.get(code).nusax_folder
                                      for code in available_languages("nusax_mt")])
  column_codes = {}
  for column in table.header:
    if column == id_field:
      continue
    try:
      column_codes[column] = languages.by_nusax_folder(column).code
    except DataError as e:
      raise table.error(_HEADER_ROW, column, f"unknown language column: {e}") from None
  seen: dict[str, int] = {}
  out = []
  for row, values in table.rows():
    out_row = {"id": _unique_id(table, row, values, id_field, seen)}
    for column, code in column_codes.items():
      out_row[code] = _text(table, row, values, column)
    out.append(out_row)
  return out


def nusax_mt_pairs(src: str, tgt: str, split: str) -> list[Row]:
  """NusaX-MT as {id, source, target, source_language, target_language}, any direction."""
  _require_pair("nusax_mt", src, tgt)
  return [_pair_row(row["id"], row[src], row[tgt], src, tgt) for row in nusax_mt(split)]


def nusax_lexicon(lang: str) -> list[Row]:
  """NusaX Indonesian -> `lang` word list: {id, ind, <lang>}; one row per word pair.

  Upstream leaves some target words blank (Balinese 31, Banjarese 1) for Indonesian
  words with no translation; such entries are skipped, counted and logged. Words are
  stripped of the stray spaces the lexicon files carry ("angkat ").
  """
  language = _require_available("nusax_senti", lang)
  if lang == "ind":
    raise DataError("nusax_lexicon: the lexicons map Indonesian to the other languages; "
                    "there is none for 'ind' itself")
  path = sources.resolve("nusax", f"datasets/lexicon/{language.nusax_folder}.csv")
  table = _parse(path)
  id_field, ind_field, word_field = "", languages.get("ind").nusax_folder, language.nusax_folder
  table.require_columns((id_field, ind_field, word_field))
  seen: dict[str, int] = {}
  out = []
  skipped = []
  for row, values in table.rows():
    row_id = _unique_id(table, row, values, id_field, seen)
    ind_word, word = values[ind_field].strip(), values[word_field].strip()
    if not ind_word or not word:
      skipped.append(row)
      continue
    out.append({"id": row_id, "ind": ind_word, lang: word})
  if skipped:
    logging.info("%s: skipped %d entries with a blank word (rows %s)", path, len(skipped),
                 ", ".join(map(str, skipped)))
  return out


# NusaWrites ---------------------------------------------------------------------------


def nusatranslation_sentiment(lang: str, split: str) -> list[Row]:
  """NusaTranslation binary sentiment: {id, text, label, language}."""
  _require_available("nusatranslation_senti", lang)
  path = sources.resolve(
      "nusa-writes", f"data/nusa_kalimat-senti-{lang}-{_split(split, _NUSA_SPLITS)}.csv")
  return _classification_rows(_parse(path), lang, LABELS["nusatranslation_senti"])


def nusatranslation_mt_pairs(src: str, tgt: str, split: str) -> list[Row]:
  """NusaTranslation Indonesian <-> local language pairs; one side must be "ind"."""
  _require_pair("nusatranslation_mt", src, tgt)
  if "ind" not in (src, tgt):
    raise DataError(f"nusatranslation_mt: pairs are Indonesian <-> local language; got "
                    f"{src!r} -> {tgt!r}, expected one side to be 'ind'")
  local = tgt if src == "ind" else src
  path = sources.resolve(
      "nusa-writes", f"data/nusa_kalimat-mt-{local}-{_split(split, _NUSA_SPLITS)}.csv")
  table = _parse(path)
  table.require_columns(("id", "ind_text", "tgt_text"))
  field = {"ind": "ind_text", local: "tgt_text"}
  seen: dict[str, int] = {}
  out = []
  for row, values in table.rows():
    out.append(_pair_row(_unique_id(table, row, values, "id", seen),
                         _text(table, row, values, field[src]),
                         _text(table, row, values, field[tgt]), src, tgt))
  return out


def nusaparagraph(task: str, lang: str, split: str) -> list[Row]:
  """NusaParagraph emotion or topic classification: {id, text, label, language}."""
  if task not in PARAGRAPH_TASKS:
    raise DataError(f"unknown NusaParagraph task {task!r}; expected one of "
                    f"{list(PARAGRAPH_TASKS)}")
  _require_available(f"nusaparagraph_{task}", lang)
  path = sources.resolve(
      "nusa-writes", f"data/nusa_alinea-{task}-{lang}-{_split(split, _NUSA_SPLITS)}.csv")
  return _classification_rows(_parse(path), lang, LABELS[f"nusaparagraph_{task}"])


# SIB-200 / FLORES ---------------------------------------------------------------------


def sib200_topic(lang: str, split: str) -> list[Row]:
  """SIB-200 topic classification: {id (index_id), text, label (category), language}.

  The TSVs were written by pandas, so texts with quotes are quoted with doubled quotes;
  csv's default quoting reads them back into the FLORES sentences.
  """
  flores_code = _require_available("sib200_topic", lang).flores_code
  path = sources.resolve(
      "sib-200", f"data/annotated/{flores_code}/{_split(split, _SIB_SPLITS)}.tsv")
  return _classification_rows(_parse(path, delimiter="\t"), lang, LABELS["sib200_topic"],
                              id_field="index_id", label_field="category")


def flores_pairs(src: str, tgt: str, split: str) -> list[Row]:
  """FLORES-200 sentence pairs, joined from SIB-200 rows on index_id, in `src` order.

  `split="all"` gives train + validation + test, the 1,004 annotated FLORES sentences.
  """
  _require_pair("flores", src, tgt)
  if split == FLORES_ALL:
    splits = SPLITS
  else:
    _split(split, _SIB_SPLITS)
    splits = (split,)
  out = []
  for one_split in splits:
    source_rows = sib200_topic(src, one_split)
    target_rows = sib200_topic(tgt, one_split)
    target_text = {row["id"]: row["text"] for row in target_rows}
    source_ids = [row["id"] for row in source_rows]
    if set(source_ids) != set(target_text):
      only_src = sorted(set(source_ids) - set(target_text), key=int)
      only_tgt = sorted(set(target_text) - set(source_ids), key=int)
      raise DataError(
          f"flores_pairs({src!r}, {tgt!r}, {one_split!r}): the SIB-200 files disagree on "
          f"field 'index_id': only in {src}: {only_src[:10]}, only in {tgt}: "
          f"{only_tgt[:10]}; expected the same FLORES sentences in both")
    out.extend(_pair_row(row["id"], row["text"], target_text[row["id"]], src, tgt)
               for row in source_rows)
  return out


# Which languages each dataset has -----------------------------------------------------

_NUSAX_SENTIMENT_FILE = re.compile(r"datasets/sentiment/(\w+)/(train|valid|test)\.csv")
_NUSA_WRITES_FILE = re.compile(
    r"data/nusa_(kalimat|alinea)-(senti|mt|emot|topic)-([a-z]{3})-(train|valid|test)\.csv")


@functools.cache
def _files_by_language() -> dict[str, frozenset[str]]:
  """Dataset name -> codes with at least one file in the pinned upstream file table."""
  found = collections.defaultdict(set)
  has_nusax_mt = bool(sources.list_files("nusax", "datasets/mt/train.csv"))
  for relpath in sources.list_files("nusax", "datasets/sentiment/"):
    match = _NUSAX_SENTIMENT_FILE.fullmatch(relpath)
    if match:
      code = languages.by_nusax_folder(match[1]).code
      found["nusax_senti"].add(code)
      if has_nusax_mt:
        found["nusax_mt"].add(code)  # NusaX-MT has one column per NusaX language.
  nusa_writes_names = {("kalimat", "senti"): "nusatranslation_senti",
                       ("kalimat", "mt"): "nusatranslation_mt",
                       ("alinea", "emot"): "nusaparagraph_emot",
                       ("alinea", "topic"): "nusaparagraph_topic"}
  for relpath in sources.list_files("nusa-writes", "data/"):
    match = _NUSA_WRITES_FILE.fullmatch(relpath)
    if match and (match[1], match[2]) in nusa_writes_names and match[3] in languages.LANGUAGES:
      name = nusa_writes_names[(match[1], match[2])]
      found[name].add(match[3])
      if name == "nusatranslation_mt":
        found[name].add("ind")  # Every NusaTranslation MT file pairs with Indonesian.
  flores_codes = {lang.flores_code: code for code, lang in languages.LANGUAGES.items()
                  if lang.flores_code}
  for relpath in sources.list_files("sib-200", "data/annotated/"):
    folder = relpath.split("/")[2]
    if folder in flores_codes and relpath.endswith(".tsv"):
      found["sib200_topic"].add(flores_codes[folder])
      found["flores"].add(flores_codes[folder])
  return {name: frozenset(codes) for name, codes in found.items()}


def available_languages(dataset: str) -> list[str]:
  """Codes with data in `dataset` (one of `DATASETS`), in language-table order.

  Read from the pinned upstream file table, not a directory listing, so it is the same
  in download mode. For the MT datasets the list includes Indonesian (and, for NusaX and
  FLORES, English), the languages sentences can be translated from and into.
  """
  if dataset not in DATASETS:
    raise DataError(f"unknown dataset {dataset!r}; expected one of {list(DATASETS)}")
  present = _files_by_language().get(dataset, frozenset())
  return [code for code in languages.codes() if code in present]
