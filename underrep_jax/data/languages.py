"""The project's one table of languages: codes, names, dataset folders and groups.

Prompts write language names out ("Sundanese", "Sunda"), tasks pick languages by group,
and readers map ISO 639-3 codes onto each dataset's own folder names; all of them read
this table so that a language is described in exactly one place.

Groups (METHODS.md, "Languages"):
- "pretrained": high-resource languages the base models already know (eng, ind);
- "seen": the languages InstructAlign teaches;
- "unseen": held-out languages, from NusaX (mad, nij, bbc) and NusaWrites (the rest).

NusaX calls Toba Batak `toba_batak` (ISO `bbc`), while NusaWrites files use `btk`
("Batak"); the two are kept as separate codes, as the data keeps them.
"""

import dataclasses

from underrep_jax.data.errors import DataError

GROUPS = ("pretrained", "seen", "unseen")


@dataclasses.dataclass(frozen=True)
class Language:
  """One language and where it appears in the datasets.

  Attributes:
    code: ISO 639-3 code, the key used everywhere in the project.
    english_name: the name used in English prompts.
    indonesian_name: the name used in Indonesian prompts (after "bahasa").
    flores_code: FLORES-200 / SIB-200 code such as "sun_Latn"; None if not covered.
    nusax_folder: folder name in the NusaX repository; None if not in NusaX.
    group: "pretrained", "seen" or "unseen".
  """
  code: str
  english_name: str
  indonesian_name: str
  flores_code: str | None
  nusax_folder: str | None
  group: str


_TABLE = (
    Language("eng", "English", "Inggris", "eng_Latn", "english", "pretrained"),
    Language("ind", "Indonesian", "Indonesia", "ind_Latn", "indonesian", "pretrained"),
    Language("sun", "Sundanese", "Sunda", "sun_Latn", "sundanese", "seen"),
    Language("jav", "Javanese", "Jawa", "jav_Latn", "javanese", "seen"),
    Language("bug", "Buginese", "Bugis", "bug_Latn", "buginese", "seen"),
    Language("ace", "Acehnese", "Aceh", "ace_Latn", "acehnese", "seen"),
    Language("bjn", "Banjarese", "Banjar", "bjn_Latn", "banjarese", "seen"),
    Language("ban", "Balinese", "Bali", "ban_Latn", "balinese", "seen"),
    Language("min", "Minangkabau", "Minangkabau", "min_Latn", "minangkabau", "seen"),
    Language("mad", "Madurese", "Madura", None, "madurese", "unseen"),
    Language("nij", "Ngaju", "Ngaju", None, "ngaju", "unseen"),
    Language("bbc", "Toba Batak", "Batak Toba", None, "toba_batak", "unseen"),
    Language("abs", "Ambonese Malay", "Ambon", None, None, "unseen"),
    Language("bew", "Betawi", "Betawi", None, None, "unseen"),
    Language("bhp", "Bima", "Bima", None, None, "unseen"),
    Language("btk", "Batak", "Batak", None, None, "unseen"),
    Language("mak", "Makassarese", "Makassar", None, None, "unseen"),
    Language("mui", "Musi", "Musi", None, None, "unseen"),
    Language("rej", "Rejang", "Rejang", None, None, "unseen"),
)

LANGUAGES: dict[str, Language] = {lang.code: lang for lang in _TABLE}


def get(code: str) -> Language:
  """The table entry for `code`; a DataError lists the known codes if there is none."""
  try:
    return LANGUAGES[code]
  except (KeyError, TypeError):
    raise DataError(f"unknown language code {code!r}; known codes: "
                    f"{', '.join(LANGUAGES)}") from None


def codes(group: str | None = None) -> list[str]:
  """All codes in table order, or only those of one group."""
  if group is not None and group not in GROUPS:
    raise DataError(f"unknown language group {group!r}; known groups: {', '.join(GROUPS)}")
  return [code for code, lang in LANGUAGES.items() if group is None or lang.group == group]


def english_name(code: str) -> str:
  return get(code).english_name


def indonesian_name(code: str) -> str:
  return get(code).indonesian_name


def by_nusax_folder(folder: str) -> Language:
  """The language stored in NusaX folder (or column) `folder`, e.g. "toba_batak"."""
  for lang in _TABLE:
    if lang.nusax_folder == folder:
      return lang
  known = ", ".join(lang.nusax_folder for lang in _TABLE if lang.nusax_folder)
  raise DataError(f"unknown NusaX language folder {folder!r}; known folders: {known}")


def by_flores_code(flores_code: str) -> Language:
  """The language with FLORES-200 code `flores_code`, e.g. "sun_Latn"."""
  for lang in _TABLE:
    if lang.flores_code == flores_code:
      return lang
  known = ", ".join(lang.flores_code for lang in _TABLE if lang.flores_code)
  raise DataError(f"unknown FLORES code {flores_code!r}; known codes: {known}")
