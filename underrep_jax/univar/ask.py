"""Asking a new LLM the value-eliciting questions: languages, prompts, progress, CSVs.

The model-free half of placing a new LLM on the value map (`jobs/univar_place.py` wires
the models in):

- `language_name`: ISO 639-3 code -> the English name the translation prompts write out
  (the 25 languages of the original UniVaR pipeline, the EUValues ones and the project's
  table in `data.languages`); an unknown code is one `ConfigError` line.
- `question_plan`: each question in each target language, taken from the question set
  where it has that language and otherwise marked to be machine-translated (from its
  English text if there is one).
- `Progress`: an append-only JSONL of finished rows keyed by (qid, lang), flushed after
  every chunk, so a killed run resumes where it stopped (a torn last line is dropped).
- `write_univar_csv`: the original UniVaR layout (qid, question, answer, lang, model,
  mt_lang), written atomically and readable by `data.read_univar_csv`.
"""

from collections.abc import Iterable, Mapping, Sequence
import csv
import dataclasses
import io
import json
import os
import pathlib
import re

from absl import logging

from underrep_jax import errors
from underrep_jax import files
from underrep_jax.data import languages as languages_lib
from underrep_jax.univar import data as data_lib

# The languages of the original pipeline (its NLLB codes without the script) and of
# EUValues / SpeechMap; the Indonesian-region ones come from `data.languages`.
LANGUAGE_NAMES = {
    "eng": "English", "zho": "Chinese", "kor": "Korean", "jpn": "Japanese", "deu": "German",
    "fin": "Finnish", "swe": "Swedish", "fra": "French", "ita": "Italian",
    "por": "Portuguese", "spa": "Spanish", "tha": "Thai", "vie": "Vietnamese",
    "zsm": "Malay", "tgl": "Tagalog", "hat": "Haitian Creole", "quy": "Quechua",
    "rus": "Russian", "ron": "Romanian", "bul": "Bulgarian", "ind": "Indonesian",
    "arb": "Arabic", "hin": "Hindi", "swh": "Swahili", "pes": "Persian", "ces": "Czech",
    "hun": "Hungarian", "srp": "Serbian",
}

DEFAULT_TRANSLATE_TEMPLATE = ("Translate the following text from {source} to {target}.\n"
                              "{source}: {text}\n{target}:")
CHAT_TEMPLATE = "chat"  # ask.template value: the model's own chat template
_KEY_FIELDS = ("qid", "lang")
_NAME_OK = re.compile(r"[^A-Za-z0-9._+-]+")


def known_languages() -> dict[str, str]:
  names = {code: lang.english_name for code, lang in languages_lib.LANGUAGES.items()}
  return {**names, **LANGUAGE_NAMES}


def language_name(code: str, where: str = "language") -> str:
  """The English name of an ISO 639-3 code; `where` names the field in the error."""
  names = known_languages()
  if code not in names:
    raise errors.ConfigError(f"{where}: unknown language code {code!r}; known codes: "
                             f"{', '.join(sorted(names))}")
  return names[code]


def parse_languages(spec: str | Sequence[str], where: str) -> list[str]:
  """A comma-separated list (or sequence) of known codes, order kept, duplicates dropped."""
  items = spec.split(",") if isinstance(spec, str) else list(spec)
  codes = list(dict.fromkeys(c.strip() for c in items if c.strip()))
  if not codes:
    raise errors.ConfigError(f"{where} is empty: give comma-separated ISO 639-3 codes")
  for code in codes:
    language_name(code, where)
  return codes


def model_name(name: str, path: str) -> str:
  """The model's name in the CSVs (and the file name): `name`, else the last part of
  `path` (a directory, a training workdir's name, a Hub id's model name)."""
  if name:
    if data_lib._IDENTITY_SEP in name or "/" in name or not name.strip():  # pylint: disable=protected-access
      raise errors.ConfigError(f"name={name!r}: a model name may not contain '|' or '/'")
    return name.strip()
  parts = [p for p in pathlib.PurePath(str(path)).parts if p not in ("/", "export")]
  if not parts:
    raise errors.ConfigError("no model name: set --config.name")
  return _NAME_OK.sub("_", parts[-1])


# --- Which question to ask in which language ----------------------------------------------


@dataclasses.dataclass(frozen=True)
class PlannedQuestion:
  """Question `qid` in `lang`: `text` as given, or (translate=True) to be translated from
  `source_text` in `source_lang`."""
  qid: str
  lang: str
  source_lang: str
  source_text: str
  translate: bool

  @property
  def text(self) -> str:
    if self.translate:
      raise ValueError(f"{self.qid}/{self.lang} is not translated yet")
    return self.source_text


def question_plan(questions: Iterable[data_lib.Question],
                  target_languages: Sequence[str]) -> list[PlannedQuestion]:
  """Every question in every target language, by language then question order.

  A (qid, language) the set has is asked as written; otherwise the qid's English text
  (else its first one) is to be translated into the language, as the original
  translated its English questions into every language before asking.
  """
  by_qid: dict[str, dict[str, str]] = {}
  for q in questions:
    language_name(q.language, f"question {q.qid!r}: lang")
    by_qid.setdefault(q.qid, {})[q.language] = q.question
  plan = []
  for lang in target_languages:
    for qid, texts in by_qid.items():
      if lang in texts:
        plan.append(PlannedQuestion(qid, lang, lang, texts[lang], False))
      else:
        source = "eng" if "eng" in texts else next(iter(texts))
        plan.append(PlannedQuestion(qid, lang, source, texts[source], True))
  return plan


def translation_prompt(template: str, text: str, source: str, target: str) -> str:
  """The translator's prompt: `template` with {text}, {source} and {target} (names)."""
  return template.format(text=text, source=language_name(source), target=language_name(target))


def chat_template_fn(model_dir: str | os.PathLike):
  """question -> the prompt the model's own chat template makes of one user turn
  (`chat_template` of tokenizer_config.json, rendered with jinja2 as transformers does)."""
  path = pathlib.Path(model_dir) / "tokenizer_config.json"
  try:
    config = json.loads(path.read_text(encoding="utf-8"))
  except (OSError, json.JSONDecodeError) as e:
    raise errors.ModelError(f"{path}: ask.template='chat' needs the model's "
                            f"tokenizer_config.json with a chat_template ({e})") from e
  template = config.get("chat_template")
  if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
    template = next((t.get("template") for t in template if t.get("name") == "default"), None)
  if not isinstance(template, str):
    raise errors.ModelError(f"{path}: no chat_template; set --config.ask.template to a "
                            "prompt with {question}")
  import jinja2  # pylint: disable=import-outside-toplevel
  compiled = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(template)

  def token(name):
    value = config.get(name)
    return value.get("content", "") if isinstance(value, dict) else (value or "")

  def render(question: str) -> str:
    def raise_exception(message):
      raise errors.ModelError(f"{path}: chat_template: {message}")
    return compiled.render(messages=[{"role": "user", "content": question}],
                           add_generation_prompt=True, bos_token=token("bos_token"),
                           eos_token=token("eos_token"), raise_exception=raise_exception)

  return render


def prompt_fn(template: str, model_dir=None):
  """question -> prompt: `template` with {question}, or the model's chat template."""
  if template == CHAT_TEMPLATE:
    return chat_template_fn(model_dir)
  if "{question}" not in template:
    raise errors.ConfigError(f"ask.template={template!r} has no {{question}} (or use 'chat')")
  return lambda question: template.replace("{question}", question)


# --- Progress and the CSV -----------------------------------------------------------------


class Progress:
  """Finished rows of one stage, one JSON object a line, keyed by (qid, lang).

  `add` appends and flushes a chunk (fsync), so a kill loses at most the chunk being
  generated. On open, a last line cut by a kill is dropped (and the file rewritten
  without it); a bad line elsewhere is a DataError naming it.
  """

  def __init__(self, path: str | os.PathLike, write: bool = True):
    self.path = pathlib.Path(path)
    self.write = write  # False: keep rows in memory only (hosts other than the first)
    self.rows: dict[tuple[str, str], dict] = {}
    if not self.path.exists():
      return
    lines = self.path.read_text(encoding="utf-8").splitlines()
    torn = False
    for number, line in enumerate(lines, start=1):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
        key = self.key(row)
      except (json.JSONDecodeError, KeyError, TypeError) as e:
        if number == len(lines):
          torn = True
          logging.warning("%s: dropping its last line, cut short by an interrupted run", path)
          break
        raise errors.DataError(f"{self.path}, line {number}: not a progress row ({e}); "
                               "delete the file to start this stage again") from e
      self.rows[key] = row
    if torn and write:
      files.write_jsonl(self.path, self.rows.values())

  @staticmethod
  def key(row: Mapping) -> tuple[str, str]:
    return tuple(str(row[f]) for f in _KEY_FIELDS)

  def __contains__(self, key) -> bool:
    return tuple(key) in self.rows

  def __len__(self) -> int:
    return len(self.rows)

  def add(self, rows: Sequence[Mapping]) -> None:
    if not rows:
      return
    if self.write:
      self.path.parent.mkdir(parents=True, exist_ok=True)
      with open(self.path, "a", encoding="utf-8") as f:
        for row in rows:
          f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    for row in rows:
      self.rows[self.key(row)] = dict(row)


def chunks(items: Sequence, size: int):
  for start in range(0, len(items), max(1, size)):
    yield items[start:start + max(1, size)]


def write_univar_csv(path: str | os.PathLike, rows: Iterable[Mapping]) -> pathlib.Path:
  """The original UniVaR CSV (qid, question, answer, lang, model, mt_lang), atomically,
  rows in the given order."""
  buffer = io.StringIO(newline="")
  writer = csv.writer(buffer)
  writer.writerow(data_lib.UNIVAR_CSV_COLUMNS)
  for row in rows:
    writer.writerow([row[c] for c in data_lib.UNIVAR_CSV_COLUMNS])
  return files.atomic_write_text(path, buffer.getvalue())
