"""The language table: groups, names and dataset codes as METHODS.md and the data use them."""

import dataclasses

import pytest

from underrep_jax.data import languages
from underrep_jax.data.errors import DataError


def test_groups_follow_methods():
  assert languages.codes("pretrained") == ["eng", "ind"]
  assert languages.codes("seen") == ["sun", "jav", "bug", "ace", "bjn", "ban", "min"]
  assert languages.codes("unseen") == ["mad", "nij", "bbc", "abs", "bew", "bhp", "btk",
                                       "mak", "mui", "rej"]
  assert languages.codes() == (languages.codes("pretrained") + languages.codes("seen")
                               + languages.codes("unseen"))


def test_names():
  assert languages.english_name("sun") == "Sundanese"
  assert languages.indonesian_name("sun") == "Sunda"
  assert languages.indonesian_name("eng") == "Inggris"
  assert languages.english_name("abs") == "Ambonese Malay"
  assert languages.indonesian_name("bbc") == "Batak Toba"
  for lang in languages.LANGUAGES.values():
    assert lang.english_name and lang.indonesian_name


def test_nusax_folders_match_the_data_readme():
  # From ../shared/data/README.md: the NusaX folder of each ISO code.
  expected = {"acehnese": "ace", "balinese": "ban", "banjarese": "bjn", "buginese": "bug",
              "english": "eng", "indonesian": "ind", "javanese": "jav", "madurese": "mad",
              "minangkabau": "min", "ngaju": "nij", "sundanese": "sun", "toba_batak": "bbc"}
  found = {lang.nusax_folder: code for code, lang in languages.LANGUAGES.items()
           if lang.nusax_folder}
  assert found == expected
  assert languages.by_nusax_folder("toba_batak").code == "bbc"


def test_toba_batak_and_nusawrites_batak_stay_separate():
  assert languages.get("bbc").nusax_folder == "toba_batak"
  assert languages.get("btk").nusax_folder is None
  assert languages.english_name("btk") == "Batak"


def test_flores_codes():
  with_flores = {code: lang.flores_code for code, lang in languages.LANGUAGES.items()
                 if lang.flores_code}
  assert with_flores == {code: f"{code}_Latn" for code in
                         ["eng", "ind", "sun", "jav", "bug", "ace", "bjn", "ban", "min"]}
  assert languages.by_flores_code("bug_Latn").code == "bug"


def test_entries_are_frozen():
  with pytest.raises(dataclasses.FrozenInstanceError):
    languages.get("sun").group = "unseen"


def test_unknown_code_lists_known_codes():
  with pytest.raises(DataError, match=r"unknown language code 'xyz'; known codes: eng, ind"):
    languages.get("xyz")
  with pytest.raises(DataError, match="unknown language code"):
    languages.english_name("su")
  with pytest.raises(DataError, match="unknown language group"):
    languages.codes("seen-ish")
  with pytest.raises(DataError, match="unknown NusaX language folder 'klingon'"):
    languages.by_nusax_folder("klingon")
