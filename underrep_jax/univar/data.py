"""UniVaR question-answer data: readers for three sources and per-identity splits.

A value identity is one (LLM, language) pair: the model, prompted in that language. Every
reader returns a flat list of `QA` records in file order; `QA.identity` is the string
"<model>|<language>" (see `identity_name`), which is what samplers, probes and maps use as
the class label. Languages are ISO 639-3 codes where the source lets us know them.

Sources:
- `read_univar_csv`: the original UniVaR layout, a folder with one CSV per model and the
  columns qid, question, answer, lang, model, mt_lang (identity = (model, lang)).
- `read_euvalues`: European Values Study items answered by 7 LLMs in 7 languages, rendered
  in English from the gb survey (an exact back-translation, see the function).
- `read_speechmap`: about 37 LLMs answering 50 China-criticism prompts in English, Chinese
  and Finnish (answers not translated).

Rows that cannot be used (failed generations, unparseable answers, ...) are skipped,
counted per identity and reason, and logged; pass a dict as `skipped` to get the counts.
Malformed files raise `DataError` naming the file, the row (header = row 1) and the field.
"""

import collections
from collections.abc import Callable, Iterable, Mapping, Sequence
import csv
import dataclasses
import hashlib
import json
import pathlib
import re

from absl import logging

from underrep_jax.data import sources
from underrep_jax.data.errors import DataError

UNIVAR_CSV_COLUMNS = ("qid", "question", "answer", "lang", "model", "mt_lang")
EUVALUES_COLUMNS = ("question_id", "question_text", "variable", "option_text",
                    "response_scale", "model_response", "status")
GB_SURVEY_COLUMNS = ("Question Text", "Response_Scale", "Response_Options", "Variable_Name")
GB_SURVEY = "Surveys_parsed/ZA7500_q_gb.csv"

# EUValues file language code -> ISO 639-3.
EUVALUES_LANGUAGES = {"cz": "ces", "es": "spa", "gb": "eng", "hu": "hun", "it": "ita",
                      "rs": "srp", "ru": "rus"}
# SpeechMap file prefix -> ISO 639-3.
SPEECHMAP_LANGUAGES = {"": "eng", "zh_": "zho", "fi_": "fin"}

_IDENTITY_SEP = "|"
_WORD = re.compile(r"\S+")
_HEADER_ROW = 1
_EUVALUES_FILE = re.compile(r"Surveys_responses/llm_survey_(?P<model>.+)_responses_"
                            r"(?P<lang>[a-z]+)\.csv")
_SPEECHMAP_FILE = re.compile(r"responses/(?P<prefix>zh_|fi_)?china_criticism_(?P<model>.+)"
                             r"\.jsonl")

Skipped = dict[str, collections.Counter]


@dataclasses.dataclass(frozen=True)
class QA:
  """One answered question of one identity, with where it came from (for errors)."""
  identity: str
  model: str
  language: str
  qid: str
  question: str
  answer: str
  source: str = ""
  row: int = 0


def identity_name(model: str, language: str) -> str:
  """The identity label "<model>|<language>"; neither part may contain "|"."""
  return f"{model}{_IDENTITY_SEP}{language}"


def split_identity(identity: str) -> tuple[str, str]:
  """(model, language) of an identity label."""
  model, _, language = identity.rpartition(_IDENTITY_SEP)
  return model, language


def truncate_words(text: str, max_words: int | None) -> str:
  """`text` up to the end of its `max_words`-th whitespace-separated word (all if None)."""
  if max_words is None:
    return text
  if max_words < 1:
    raise ValueError(f"max_words must be positive, got {max_words}")
  for count, word in enumerate(_WORD.finditer(text), start=1):
    if count == max_words:
      return text[:word.end()]
  return text


def _truncator(max_answer_words: int | None,
               truncate: Callable[[str], str] | None) -> Callable[[str], str]:
  """A tokenizer-based `truncate` wins over the word limit (tokens are what cost)."""
  if truncate is not None:
    return truncate
  return lambda text: truncate_words(text, max_answer_words)


def _error(path, row: int, field: str, problem: str) -> DataError:
  where = "row 1 (the header)" if row == _HEADER_ROW else f"row {row}"
  return DataError(f"{path}, {where}, field {field!r}: {problem} "
                   "(rows counted with the header as row 1)")


def _read_csv(path: pathlib.Path, columns: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
  """(row number, record) of a CSV file, after checking that its header has `columns`."""
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:
      reader = csv.DictReader(f)
      header = reader.fieldnames or []
      for column in columns:
        if column not in header:
          raise _error(path, _HEADER_ROW, column, f"missing column; the header has {header}")
      rows = []
      for record in reader:
        # csv counts physical lines; a record with line breaks still is one row.
        rows.append((len(rows) + 2, {k: (v or "") for k, v in record.items() if k}))
      return rows
  except (OSError, UnicodeDecodeError, csv.Error) as e:
    raise DataError(f"{path}: cannot read it as a UTF-8 CSV file: {e}") from e


def _log_skipped(source: str, skipped: Skipped) -> None:
  for identity in sorted(skipped):
    counts = ", ".join(f"{reason}={n}" for reason, n in sorted(skipped[identity].items()))
    logging.info("%s: %s skipped %s", source, identity, counts)
  total = sum(sum(c.values()) for c in skipped.values())
  if total:
    logging.info("%s: skipped %d rows in all", source, total)


def _merge_skipped(out: Skipped | None, new: Skipped) -> None:
  if out is not None:
    for identity, counts in new.items():
      out.setdefault(identity, collections.Counter()).update(counts)


# --- The original UniVaR CSV format -------------------------------------------------------


def read_univar_csv(folder: str | pathlib.Path, *, max_answer_words: int | None = None,
                    truncate: Callable[[str], str] | None = None,
                    skipped: Skipped | None = None) -> list[QA]:
  """Reads every *.csv in `folder` (one per model) in the original UniVaR layout.

  Identity = (model, lang). `mt_lang` (the language the QA was translated into) is
  checked to be present but not used. Rows with an empty question or answer are skipped
  and counted; an empty qid, model or lang is an error.
  """
  folder = pathlib.Path(folder)
  paths = sorted(folder.glob("*.csv"))
  if not paths:
    raise DataError(f"{folder}: no *.csv files; expected one CSV per model with the columns "
                    f"{', '.join(UNIVAR_CSV_COLUMNS)}")
  cut = _truncator(max_answer_words, truncate)
  qas, skips = [], {}
  for path in paths:
    for row, record in _read_csv(path, UNIVAR_CSV_COLUMNS):
      for field in ("qid", "model", "lang"):
        if not record[field].strip():
          raise _error(path, row, field, "empty; every QA needs a qid, a model and a lang")
        if _IDENTITY_SEP in record[field] and field != "qid":
          raise _error(path, row, field, f"contains {_IDENTITY_SEP!r}, which separates "
                       "model and language in identity labels")
      model, lang = record["model"].strip(), record["lang"].strip()
      identity = identity_name(model, lang)
      question, answer = record["question"].strip(), record["answer"].strip()
      if not question or not answer:
        skips.setdefault(identity, collections.Counter())["empty_question_or_answer"] += 1
        continue
      qas.append(QA(identity, model, lang, record["qid"].strip(), question, cut(answer),
                    str(path), row))
  _log_skipped(str(folder), skips)
  _merge_skipped(skipped, skips)
  return qas


# --- EUValues -----------------------------------------------------------------------------

# "1 (very important) - 2 - 3 (label) - 8 (Don't Know, DK)": the gb survey and most others.
_SCALE_PAREN = (re.compile(r"\s+-\s+(?=\d+\b)"), re.compile(r"(\d+)(?:\s*\((.*)\))?", re.S))
# "1 - nagyon fontos, 2 - elég fontos, 8 - Nem tudom": Hungarian and Serbian files.
_SCALE_DASH = (re.compile(r"\s*,\s*(?=\d+\s*-)"), re.compile(r"(\d+)\s*-\s*(.*)", re.S))
# "01.Label - 02.Label": some Russian items.
_SCALE_DOT = (re.compile(r"\s+-\s+(?=\d+\.)"), re.compile(r"(\d+)\.\s*(.*)", re.S))
_MISSING_LABEL = re.compile(r",\s*(DK|NA)\s*$")
# "Final answer:" as the prompts asked; "Válasz:" ("Answer:") where Hungarian answers use it.
_FINAL_ANSWER = re.compile(r"(?:final answer|válasz)\s*:", re.I)
_LEADING_CODE = re.compile(r"(\d+)(?!\d)")


def parse_scale(scale: str) -> dict[int, str] | None:
  """Code -> label ("" when unlabeled) of a response scale, or None if it lists no codes.

  Codes are compared as integers, so "01" and "1" are the same code.
  """
  scale = scale.strip()
  for splitter, entry in (_SCALE_PAREN, _SCALE_DASH, _SCALE_DOT):
    out = {}
    for part in splitter.split(scale):
      m = entry.fullmatch(part.strip())
      if not m:
        break
      out.setdefault(int(m.group(1)), (m.group(2) or "").strip())
    else:
      if out:
        return out
  return None


def _answer_text(model_response: str) -> str:
  """The answer part of a response: after "Final answer:", without "@@" and brackets."""
  text = model_response
  m = _FINAL_ANSWER.search(text)
  if m:
    text = text[m.end():]
  return text.replace("@@", " ").strip().strip("<>[]*\"' ").strip()


def parse_choice(model_response: str, own_scale: Mapping[int, str] | None) -> int | None:
  """The code a model chose, or None when the response names none.

  Takes the text after "Final answer:", drops "@@" markers and brackets, and reads a
  leading integer ("@@1@@", "1 (Neví)", "<2>"). A response that is instead one of the
  labels of the row's own scale (or its abbreviation, "DK") maps to that label's code.
  """
  text = _answer_text(model_response)
  m = _LEADING_CODE.match(text)
  if m:
    return int(m.group(1))
  if own_scale and text:
    wanted = text.casefold().rstrip(".")
    for code, label in own_scale.items():
      names = {label.casefold()} | {label.rsplit(",", 1)[-1].strip().casefold()}
      if label and wanted in names:
        return code
  return None


# "nagyon fontos, elég fontos, nem fontos": Hungarian and Russian scales without codes.
_LABEL_SEPARATORS = (re.compile(r"\s+-\s+"), re.compile(r"\s*,\s*"))


def _label_key(text: str) -> str:
  return text.strip().casefold().rstrip(".").strip()


def choice_by_position(model_response: str, scale: str,
                       gb_scale: Mapping[int, str]) -> int | None:
  """The gb code of a label chosen from a scale that lists labels without codes.

  The translated surveys keep the gb order of the options, so the k-th label is the k-th
  gb code: of all gb codes when the scale lists as many labels as the gb scale has
  codes, else of the substantive ones (not "DK"/"NA") when it lists that many. Any other
  count (merged or missing options), or a response that is not one of the labels,
  gives None.
  """
  wanted = _label_key(_answer_text(model_response))
  if not wanted:
    return None
  codes = sorted(gb_scale)
  substantive = [c for c in codes if not _MISSING_LABEL.search(gb_scale[c])]
  for separator in _LABEL_SEPARATORS:
    labels = [_label_key(part) for part in separator.split(scale.strip()) if part.strip()]
    if len(labels) < 2 or wanted not in labels or len(set(labels)) != len(labels):
      continue
    for targets in (codes, substantive):
      if len(labels) == len(targets):
        return targets[labels.index(wanted)]
  return None


def render_gb_answer(code: int, gb_scale: Mapping[int, str]) -> str:
  """The gb text of a chosen code; unlabeled points of a range get the range's ends."""
  label = gb_scale[code]
  if label:
    return label
  substantive = [c for c, lab in gb_scale.items() if not _MISSING_LABEL.search(lab)]
  lo, hi = min(substantive), max(substantive)
  lo_text = f"{lo} ({gb_scale[lo]})" if gb_scale[lo] else str(lo)
  hi_text = f"{hi} ({gb_scale[hi]})" if gb_scale[hi] else str(hi)
  return f"{code} on a scale from {lo_text} to {hi_text}"


@dataclasses.dataclass(frozen=True)
class _GbItem:
  qid: str
  question: str  # the gb question text and item, as rendered
  question_text: str
  option: str
  scale: dict[int, str] | None


def _read_gb_items() -> dict[str, list[_GbItem]]:
  """gb survey variable -> its distinct items (several when the variable is reused)."""
  path = sources.resolve("euvalues", GB_SURVEY)
  by_variable: dict[str, list[_GbItem]] = {}
  for row, record in _read_csv(path, GB_SURVEY_COLUMNS):
    variable = record["Variable_Name"].strip()
    if not variable:  # No response row can name it (one such item upstream, Q13a).
      continue
    text, option = record["Question Text"].strip(), record["Response_Options"].strip()
    items = by_variable.setdefault(variable, [])
    if any(i.question_text == text and i.option == option for i in items):
      continue  # The same item listed twice.
    question = f"{text} — {option}" if option and option != text else text
    items.append(_GbItem(variable, question, text, option, parse_scale(record["Response_Scale"])))
  for variable, items in by_variable.items():
    if len(items) > 1:  # A variable reused for different items: qids must still differ.
      by_variable[variable] = [dataclasses.replace(i, qid=f"{variable}:{k}")
                               for k, i in enumerate(items)]
  return by_variable


def euvalues_files(models: Iterable[str] | None = None,
                   languages: Iterable[str] | None = None) -> list[tuple[str, str, str]]:
  """(relpath, model, file language code) of the pinned EUValues response files."""
  models = set(models) if models is not None else None
  languages = set(languages) if languages is not None else None
  out = []
  for relpath in sources.list_files("euvalues", "Surveys_responses/llm_survey_"):
    m = _EUVALUES_FILE.fullmatch(relpath)
    if not m or m["lang"] not in EUVALUES_LANGUAGES:
      continue
    if (models is None or m["model"] in models) and (
        languages is None or m["lang"] in languages):
      out.append((relpath, m["model"], m["lang"]))
  return out


def read_euvalues(models: Iterable[str] | None = None,
                  languages: Iterable[str] | None = None, *,
                  skipped: Skipped | None = None) -> list[QA]:
  """EUValues answers rendered in English; identity = (model, language it was asked in).

  Each response row is matched to the gb survey item with the same `variable`. The QA is
  the gb question text and item; the answer is the gb text of the chosen code. The code
  is read from `model_response` and must be on the gb scale; where the row's scale lists
  labels without codes (many Hungarian and Russian items), the chosen label's position
  gives the code (`choice_by_position`). Where the row's own
  response scale lists codes, they must be the gb scale's codes: the upstream files
  reuse variable names for different items in some languages, and this catches those
  mismatches (a mismatch with the same codes cannot be seen and stays). Skipped, counted
  per identity: failed generations, rows without a gb item, reused gb variables that
  the row does not pin down, unparseable responses, scale mismatches, codes off the gb
  scale (write-in items such as year of birth) and repeats of an item already read.
  `models` / `languages` filter by the file names' model and language codes (gb, es...).
  """
  gb_items = _read_gb_items()
  qas, skips = [], {}
  for relpath, model, lang_code in euvalues_files(models, languages):
    path = sources.resolve("euvalues", relpath)
    language = EUVALUES_LANGUAGES[lang_code]
    identity = identity_name(model, language)
    counts = skips.setdefault(identity, collections.Counter())
    seen = set()
    for row, record in _read_csv(path, EUVALUES_COLUMNS):
      if record["status"].strip() != "success":
        counts["failed_status"] += 1
        continue
      candidates = gb_items.get(record["variable"].strip(), [])
      if len(candidates) > 1:
        candidates = [i for i in candidates if i.question_text == record["question_text"].strip()
                      and i.option == record["option_text"].strip()]
      if not candidates:
        counts["no_gb_item"] += 1
        continue
      if len(candidates) > 1:
        counts["ambiguous_gb_variable"] += 1
        continue
      item = candidates[0]
      own_scale = parse_scale(record["response_scale"])
      code = parse_choice(record["model_response"], own_scale)
      if code is None and own_scale is None and item.scale is not None:
        code = choice_by_position(record["model_response"], record["response_scale"],
                                  item.scale)
      if code is None:
        counts["unparseable_response"] += 1
        continue
      if item.scale is None or code not in item.scale:
        counts["code_not_on_gb_scale"] += 1
        continue
      if own_scale is not None and set(own_scale) != set(item.scale):
        counts["scale_mismatch"] += 1
        continue
      if item.qid in seen:
        counts["repeated_item"] += 1
        continue
      seen.add(item.qid)
      qas.append(QA(identity, model, language, item.qid, item.question,
                    render_gb_answer(code, item.scale), str(path), row))
  skips = {k: v for k, v in skips.items() if v}
  _log_skipped("euvalues", skips)
  _merge_skipped(skipped, skips)
  return qas


# --- SpeechMap ----------------------------------------------------------------------------


def speechmap_files() -> list[tuple[str, str, str]]:
  """(relpath, model, ISO 639-3 language) of the pinned SpeechMap response files."""
  out = []
  for relpath in sources.list_files("speechmap", "responses/"):
    m = _SPEECHMAP_FILE.fullmatch(relpath)
    if m:
      out.append((relpath, m["model"], SPEECHMAP_LANGUAGES[m["prefix"] or ""]))
  return out


def _response_content(record: dict) -> str | None:
  try:
    content = record["response"]["choices"][0]["message"]["content"]
  except (KeyError, IndexError, TypeError):
    return None
  return content if isinstance(content, str) and content.strip() else None


def _speechmap_records(path: pathlib.Path):
  """(line number, record) of a SpeechMap JSON-lines file, each with a non-empty
  question_id and question; blank lines skipped."""
  try:
    lines = path.read_text(encoding="utf-8").splitlines()
  except (OSError, UnicodeDecodeError) as e:
    raise DataError(f"{path}: cannot read it as UTF-8 JSON lines: {e}") from e
  for row, line in enumerate(lines, start=1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except json.JSONDecodeError as e:
      raise DataError(f"{path}, line {row}: not valid JSON ({e})") from e
    for field in ("question_id", "question"):
      if not isinstance(record.get(field), str) or not record[field].strip():
        raise DataError(f"{path}, line {row}, field {field!r}: expected a non-empty string")
    yield row, record


def read_speechmap(*, max_answer_words: int | None = 256,
                   truncate: Callable[[str], str] | None = None,
                   skipped: Skipped | None = None) -> list[QA]:
  """SpeechMap answers; identity = (model from the file name, eng/zho/fin from its prefix).

  The model is the file name's "<provider>_<model>". The answer is
  `response.choices[0].message.content`; rows without it (API errors) are skipped and
  counted. Answers are long essays, so they are cut to `max_answer_words` words, or by
  `truncate` (e.g. a tokenizer-based cut to N tokens) when given. Note that whitespace
  words undercount Chinese, which has no spaces; use `truncate` for it.
  """
  cut = _truncator(max_answer_words, truncate)
  qas, skips = [], {}
  for relpath, model, language in speechmap_files():
    path = sources.resolve("speechmap", relpath)
    identity = identity_name(model, language)
    counts = skips.setdefault(identity, collections.Counter())
    for row, record in _speechmap_records(path):
      content = _response_content(record)
      if content is None:
        counts["no_content"] += 1
        continue
      qas.append(QA(identity, model, language, record["question_id"],
                    record["question"].strip(), cut(content.strip()), str(path), row))
  skips = {k: v for k, v in skips.items() if v}
  _log_skipped("speechmap", skips)
  _merge_skipped(skipped, skips)
  return qas


# --- Question sets (asking a new LLM) -----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Question:
  """One value-eliciting question to ask, in the language it is written in."""
  qid: str
  question: str
  language: str = "eng"


QUESTION_CSV_COLUMNS = ("qid", "question")  # and optionally "lang" (default eng)


def render_scale(scale: Mapping[int, str]) -> str:
  """"1 (Very important), 2, 8 (Don't know)": a response scale as an answer hint."""
  return ", ".join(f"{code} ({label})" if label else str(code) for code, label in scale.items())


def euvalues_questions() -> list[Question]:
  """The gb (English) EUValues items with a response scale, one per qid, in survey order:
  the rendered question and item, then the options to answer with."""
  out = []
  for items in _read_gb_items().values():
    for item in items:
      if item.scale:
        out.append(Question(item.qid, f"{item.question}\nOptions: {render_scale(item.scale)}"))
  return out


def speechmap_questions() -> list[Question]:
  """The SpeechMap prompts, one per question_id, in the order first met (English files:
  every model answered the same prompts)."""
  seen: dict[str, Question] = {}
  for relpath, _, language in speechmap_files():
    if language != "eng":
      continue
    for _, record in _speechmap_records(sources.resolve("speechmap", relpath)):
      seen.setdefault(record["question_id"], Question(record["question_id"],
                                                      record["question"].strip()))
  return list(seen.values())


def read_questions_csv(path: str | pathlib.Path) -> list[Question]:
  """A user's questions: columns qid, question and optionally lang (ISO 639-3, default
  eng). A qid may appear once per language (its translations); empty fields and repeated
  (qid, lang) pairs are errors naming the row."""
  path = pathlib.Path(path)
  out, seen = [], set()
  for row, record in _read_csv(path, QUESTION_CSV_COLUMNS):
    for field in QUESTION_CSV_COLUMNS:
      if not record[field].strip():
        raise _error(path, row, field, "empty; every question needs a qid and its text")
    language = record.get("lang", "").strip() or "eng"
    key = (record["qid"].strip(), language)
    if key in seen:
      raise _error(path, row, "qid", f"qid {key[0]!r} in lang {language!r} appears twice")
    seen.add(key)
    out.append(Question(key[0], record["question"].strip(), language))
  if not out:
    raise DataError(f"{path}: no questions (expected the columns "
                    f"{', '.join(QUESTION_CSV_COLUMNS)}[, lang])")
  return out


# --- Grouping and splits ------------------------------------------------------------------


def group_by_identity(qas: Iterable[QA]) -> dict[str, list[QA]]:
  """Identity -> its QAs, identities sorted, QAs in input order."""
  groups: dict[str, list[QA]] = {}
  for qa in qas:
    groups.setdefault(qa.identity, []).append(qa)
  return {k: groups[k] for k in sorted(groups)}


SPLIT_UNITS = ("question", "qa")


def _split_key(seed: int, *parts: str) -> str:
  return hashlib.sha256("\x00".join((str(seed),) + parts).encode()).hexdigest()


def split_qas(qas: Iterable[QA], test_fraction: float = 0.2, seed: int = 0,
              unit: str = "question") -> tuple[list[QA], list[QA]]:
  """Deterministic (train, test) split of every identity's QAs; output keeps input order.

  unit="question" (default): round(#qids * test_fraction) qids, ranked by a hash of
  (seed, qid), are test for every identity at once. In EUValues and SpeechMap every
  identity answers the same questions; splitting each identity on its own would leave
  a test question in the other identities' train data only, and a probe that reads the
  question would learn "not this identity" (below-chance accuracy, seen with TF-IDF).
  unit="qa": each identity's QAs ranked by a hash of (seed, identity, qid), its first
  round(n * test_fraction) are test (at least one when n >= 2).
  Neither depends on file order.
  """
  if not 0.0 <= test_fraction < 1.0:
    raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
  if unit not in SPLIT_UNITS:
    raise ValueError(f"unit must be one of {SPLIT_UNITS}, got {unit!r}")
  qas = list(qas)
  if unit == "question":
    qids = sorted({qa.qid for qa in qas}, key=lambda qid: _split_key(seed, qid))
    test_qids = set(qids[:round(len(qids) * test_fraction)])
    is_test = [qa.qid in test_qids for qa in qas]
  else:
    test_ids = set()
    for group in group_by_identity(qas).values():
      n_test = round(len(group) * test_fraction)
      if test_fraction > 0 and len(group) >= 2:
        n_test = min(max(n_test, 1), len(group) - 1)
      ranked = sorted(group, key=lambda qa: _split_key(seed, qa.identity, qa.qid))
      test_ids.update(id(qa) for qa in ranked[:n_test])
    is_test = [id(qa) in test_ids for qa in qas]
  train = [qa for qa, t in zip(qas, is_test) if not t]
  test = [qa for qa, t in zip(qas, is_test) if t]
  return train, test
