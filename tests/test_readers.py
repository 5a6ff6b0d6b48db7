"""Readers on the real data (counts, labels, alignment) and on small broken copies."""

import collections
import csv
import os
import pathlib

import pandas as pd
import pytest

from underrep_jax.data import languages
from underrep_jax.data import readers
from underrep_jax.data import sources
from underrep_jax.data.errors import DataError

NUSAX_CODES = ["eng", "ind", "sun", "jav", "bug", "ace", "bjn", "ban", "min", "mad", "nij",
               "bbc"]
NUSA_SPLITS = {"train": "train", "validation": "valid", "test": "test"}


@pytest.fixture(autouse=True)
def _real_data_dir(data_dir, monkeypatch):
  """Every test starts on the real data dir, with no leftover `set_data_dir`."""
  monkeypatch.setenv(sources.DATA_DIR_ENV, str(data_dir))
  sources.set_data_dir(None)
  yield
  sources.set_data_dir(None)


def _pandas_rows(path: pathlib.Path, sep: str = ",") -> pd.DataFrame:
  return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)


# Real data ----------------------------------------------------------------------------


def test_available_languages():
  assert readers.available_languages("nusax_senti") == NUSAX_CODES
  assert readers.available_languages("nusax_mt") == NUSAX_CODES
  assert readers.available_languages("nusatranslation_senti") == [
      "sun", "jav", "min", "mad", "abs", "bew", "bhp", "btk", "mak", "mui", "rej"]
  assert readers.available_languages("nusatranslation_mt") == [
      "ind", "sun", "jav", "min", "mad", "abs", "bew", "bhp", "btk", "mak", "mui", "rej"]
  paragraph = ["sun", "jav", "bug", "min", "mad", "bew", "btk", "mak", "mui", "rej"]
  assert readers.available_languages("nusaparagraph_emot") == paragraph
  assert readers.available_languages("nusaparagraph_topic") == paragraph
  flores = ["eng", "ind", "sun", "jav", "bug", "ace", "bjn", "ban", "min"]
  assert readers.available_languages("sib200_topic") == flores
  assert readers.available_languages("flores") == flores
  with pytest.raises(DataError, match="unknown dataset 'nusax'"):
    readers.available_languages("nusax")


def test_nusax_sentiment_counts_labels_and_parallel_rows():
  by_lang = {}
  for lang in NUSAX_CODES:
    by_lang[lang] = {split: readers.nusax_sentiment(lang, split) for split in readers.SPLITS}
    assert [len(by_lang[lang][s]) for s in readers.SPLITS] == [500, 100, 400]
  first = by_lang["eng"]["train"][0]
  assert set(first) == {"id", "text", "label", "language"}
  assert first["language"] == "eng" and first["text"].startswith("Enjoy 0% instalment")
  for split in readers.SPLITS:
    labels = collections.Counter(r["label"] for r in by_lang["eng"][split])
    assert set(labels) == set(readers.LABELS["nusax_senti"])
    # The rows are translations of each other: same ids and labels, in the same order.
    for lang in NUSAX_CODES:
      assert [(r["id"], r["label"]) for r in by_lang[lang][split]] == [
          (r["id"], r["label"]) for r in by_lang["eng"][split]]


def test_nusax_mt_is_parallel_with_sentiment():
  mismatches = []
  for split in readers.SPLITS:
    mt = readers.nusax_mt(split)
    assert len(mt) == {"train": 500, "validation": 100, "test": 400}[split]
    assert set(mt[0]) == {"id", *NUSAX_CODES}
    assert [r["id"] for r in mt] == [str(i) for i in range(len(mt))]
    for lang in NUSAX_CODES:
      for mt_row, senti_row in zip(mt, readers.nusax_sentiment(lang, split)):
        if mt_row[lang] != senti_row["text"]:
          mismatches.append((lang, split, senti_row["id"]))
  # Upstream, one Banjarese test sentence was edited in the MT file only.
  assert mismatches == [("bjn", "test", "256")]


def test_nusax_mt_pairs():
  pairs = readers.nusax_mt_pairs("bbc", "eng", "validation")
  mt = readers.nusax_mt("validation")
  assert len(pairs) == 100
  assert pairs[5] == {"id": mt[5]["id"], "source": mt[5]["bbc"], "target": mt[5]["eng"],
                      "source_language": "bbc", "target_language": "eng"}
  with pytest.raises(DataError, match="no data for language 'abs'"):
    readers.nusax_mt_pairs("abs", "ind", "train")
  with pytest.raises(DataError, match="source and target are both 'sun'"):
    readers.nusax_mt_pairs("sun", "sun", "train")


def test_nusax_lexicon(data_dir):
  # Blank target words are upstream's "no translation" entries: 31 Balinese, 1 Banjarese.
  blank = {"ban": 31, "bjn": 1}
  for lang in NUSAX_CODES:
    if lang == "ind":
      continue
    rows = readers.nusax_lexicon(lang)
    folder = languages.get(lang).nusax_folder
    upstream = _pandas_rows(data_dir / f"nusax/datasets/lexicon/{folder}.csv")
    assert len(rows) == len(upstream) - blank.get(lang, 0)
    assert set(rows[0]) == {"id", "ind", lang}
    assert all(r["ind"] and r[lang] and r[lang] == r[lang].strip() for r in rows)
  assert readers.nusax_lexicon("eng")[0] == {"id": "0", "ind": "abu", "eng": "ash"}
  with pytest.raises(DataError, match="none for 'ind'"):
    readers.nusax_lexicon("ind")


def test_nusatranslation_sentiment():
  counts = {lang: [len(readers.nusatranslation_sentiment(lang, s)) for s in readers.SPLITS]
            for lang in readers.available_languages("nusatranslation_senti")}
  assert counts["sun"] == [3400, 448, 1200]
  assert counts["abs"] == [250, 98, 500]
  assert counts["rej"] == [250, 78, 500]
  labels = {r["label"] for r in readers.nusatranslation_sentiment("jav", "train")}
  assert labels == set(readers.LABELS["nusatranslation_senti"]) == {"negative", "positive"}
  with pytest.raises(DataError, match="nusatranslation_senti: no data for language 'bug'"):
    readers.nusatranslation_sentiment("bug", "train")


def test_nusatranslation_mt_pairs_both_directions(data_dir):
  for lang in ["sun", "abs", "bhp"]:
    for split in readers.SPLITS:
      upstream = _pandas_rows(
          data_dir / f"nusa-writes/data/nusa_kalimat-mt-{lang}-{NUSA_SPLITS[split]}.csv")
      to_lang = readers.nusatranslation_mt_pairs("ind", lang, split)
      from_lang = readers.nusatranslation_mt_pairs(lang, "ind", split)
      assert len(to_lang) == len(from_lang) == len(upstream)
      assert [r["source"] for r in to_lang] == list(upstream["ind_text"])
      assert [r["target"] for r in to_lang] == list(upstream["tgt_text"])
      assert [(r["source"], r["target"]) for r in from_lang] == [
          (r["target"], r["source"]) for r in to_lang]
  assert to_lang[0]["source_language"] == "ind" and to_lang[0]["target_language"] == "bhp"
  assert len(readers.nusatranslation_mt_pairs("ind", "jav", "train")) == 6600
  with pytest.raises(DataError, match="expected one side to be 'ind'"):
    readers.nusatranslation_mt_pairs("sun", "jav", "train")


def test_nusaparagraph(data_dir):
  for task in readers.PARAGRAPH_TASKS:
    labels = set()
    for lang in readers.available_languages(f"nusaparagraph_{task}"):
      for split in readers.SPLITS:
        rows = readers.nusaparagraph(task, lang, split)
        upstream = _pandas_rows(
            data_dir / f"nusa-writes/data/nusa_alinea-{task}-{lang}-{NUSA_SPLITS[split]}.csv")
        assert [r["id"] for r in rows] == list(upstream["id"])
        assert [r["text"] for r in rows] == list(upstream["text"])
        labels.update(r["label"] for r in rows)
    assert labels == set(readers.LABELS[f"nusaparagraph_{task}"])
  assert len(readers.LABELS["nusaparagraph_topic"]) == 8
  assert [len(readers.nusaparagraph("emot", "sun", s)) for s in readers.SPLITS] == [
      2398, 400, 800]
  with pytest.raises(DataError, match="unknown NusaParagraph task 'senti'"):
    readers.nusaparagraph("senti", "sun", "train")
  with pytest.raises(DataError, match="no data for language 'abs'"):
    readers.nusaparagraph("topic", "abs", "train")


def test_sib200_topic(data_dir):
  labels_txt = sources.resolve("sib-200", "data/annotated/eng_Latn/labels.txt")
  assert tuple(labels_txt.read_text(encoding="utf-8").split("\n")[:7]) == readers.LABELS[
      "sib200_topic"]
  sib_splits = {"train": "train", "validation": "dev", "test": "test"}
  for lang in readers.available_languages("sib200_topic"):
    counts = []
    for split in readers.SPLITS:
      rows = readers.sib200_topic(lang, split)
      counts.append(len(rows))
      flores_code = languages.get(lang).flores_code
      upstream = _pandas_rows(
          data_dir / f"sib-200/data/annotated/{flores_code}/{sib_splits[split]}.tsv", sep="\t")
      # Quoted texts ("...""...""...") come back as the FLORES sentence, as pandas reads it.
      assert [r["text"] for r in rows] == list(upstream["text"])
      assert {r["label"] for r in rows} == set(readers.LABELS["sib200_topic"])
    assert counts == [701, 99, 204]
  eng = {r["id"]: r["text"] for r in readers.sib200_topic("eng", "train")}
  assert eng["403"].startswith("In the beginning of the war")
  assert eng["590"].endswith('that are "neighbors".')  # Written as ""neighbors"" in the TSV.
  with pytest.raises(DataError, match="sib200_topic: no data for language 'mad'"):
    readers.sib200_topic("mad", "test")
  with pytest.raises(DataError, match="unknown split 'dev'"):
    readers.sib200_topic("sun", "dev")


def test_flores_pairs_align():
  pairs = readers.flores_pairs("sun", "eng", "all")
  assert len(pairs) == 1004
  assert len({p["id"] for p in pairs}) == 1004
  assert all(p["source"].strip() and p["target"].strip() for p in pairs)
  eng_by_id = {r["id"]: r["text"] for s in readers.SPLITS for r in readers.sib200_topic("eng", s)}
  sun_by_id = {r["id"]: r["text"] for s in readers.SPLITS for r in readers.sib200_topic("sun", s)}
  assert all(p["target"] == eng_by_id[p["id"]] and p["source"] == sun_by_id[p["id"]]
             for p in pairs)
  assert pairs[0]["source_language"] == "sun" and pairs[0]["target_language"] == "eng"
  assert [len(readers.flores_pairs("bug", "ind", s)) for s in readers.SPLITS] == [701, 99, 204]
  with pytest.raises(DataError, match="flores: no data for language 'mad'"):
    readers.flores_pairs("mad", "eng", "all")


def test_cached_reads_return_fresh_dicts():
  first = readers.nusax_sentiment("sun", "train")
  first[0]["text"] = "changed by a caller"
  assert readers.nusax_sentiment("sun", "train")[0]["text"] != "changed by a caller"


# Broken input -------------------------------------------------------------------------


def _write_csv(path: pathlib.Path, rows: list[list[str]], delimiter: str = ",") -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "w", newline="", encoding="utf-8") as f:
    csv.writer(f, delimiter=delimiter).writerows(rows)
  return path


@pytest.fixture
def tmp_data_dir(tmp_path, monkeypatch):
  """An empty data dir in the upstream layout, made the active one via the env var."""
  monkeypatch.setenv(sources.DATA_DIR_ENV, str(tmp_path))
  return tmp_path


def _sun_train(root: pathlib.Path) -> pathlib.Path:
  return root / "nusax/datasets/sentiment/sundanese/train.csv"


def test_missing_file_names_the_path_and_the_env_var(tmp_data_dir):
  with pytest.raises(DataError) as error:
    readers.nusax_sentiment("sun", "train")
  message = str(error.value)
  assert str(_sun_train(tmp_data_dir)) in message
  assert "UNDERREP_DATA_DIR" in message


def test_missing_column(tmp_data_dir):
  path = _write_csv(_sun_train(tmp_data_dir), [["id", "text"], ["1", "Wilujeng"]])
  with pytest.raises(DataError) as error:
    readers.nusax_sentiment("sun", "train")
  message = str(error.value)
  assert str(path) in message and "row 1 (the header)" in message
  assert "field 'label'" in message and "missing column" in message


def test_unknown_label_counts_rows_not_lines(tmp_data_dir):
  path = _write_csv(_sun_train(tmp_data_dir), [
      ["id", "text", "label"],
      ["1", 'Hiji, "dua"\nsareng tilu', "positive"],  # One row over two lines.
      ["2", "Opat", "neutrall"],
  ])
  with pytest.raises(DataError) as error:
    readers.nusax_sentiment("sun", "train")
  message = str(error.value)
  assert str(path) in message and "row 3," in message and "field 'label'" in message
  assert "unknown label 'neutrall'" in message and "'neutral'" in message


def test_empty_text(tmp_data_dir):
  path = _write_csv(tmp_data_dir / "nusa-writes/data/nusa_kalimat-mt-sun-test.csv", [
      ["id", "ind_text", "tgt_text"], ["a", "Halo", "Wilujeng"], ["b", "Apa", "  "]])
  with pytest.raises(DataError) as error:
    readers.nusatranslation_mt_pairs("ind", "sun", "test")
  message = str(error.value)
  assert str(path) in message and "row 3," in message
  assert "field 'tgt_text'" in message and "empty text" in message


def test_unknown_language_code(tmp_data_dir):
  with pytest.raises(DataError, match="unknown language code 'xyz'"):
    readers.nusax_sentiment("xyz", "train")
  # A language column the table does not know, in the NusaX-MT header.
  header = [""] + [languages.get(code).nusax_folder for code in NUSAX_CODES] + ["klingon"]
  path = _write_csv(tmp_data_dir / "nusax/datasets/mt/valid.csv",
                    [header, ["0"] + ["teks"] * (len(header) - 1)])
  with pytest.raises(DataError) as error:
    readers.nusax_mt("validation")
  message = str(error.value)
  assert str(path) in message and "row 1 (the header)" in message
  assert "field 'klingon'" in message and "unknown language column" in message


def test_wrong_field_count_and_duplicate_id(tmp_data_dir):
  path = _write_csv(_sun_train(tmp_data_dir), [
      ["id", "text", "label"], ["1", "a", "positive"], ["2", "b", "positive", "extra"]])
  with pytest.raises(DataError, match=r"train\.csv, row 3: 4 fields, but the header has 3"):
    readers.nusax_sentiment("sun", "train")
  _write_csv(path, [["id", "text", "label"], ["1", "a", "positive"], ["1", "b", "negative"]])
  os.utime(path, ns=(0, 0))  # A new mtime as well, so the in-memory cache sees a new file.
  with pytest.raises(DataError, match=r"row 3, field 'id': duplicate id '1' \(first in row 2\)"):
    readers.nusax_sentiment("sun", "train")


def test_rewritten_file_is_read_again(tmp_data_dir):
  path = _write_csv(_sun_train(tmp_data_dir), [["id", "text", "label"], ["1", "a", "positive"]])
  assert [r["text"] for r in readers.nusax_sentiment("sun", "train")] == ["a"]
  _write_csv(path, [["id", "text", "label"], ["1", "a", "positive"], ["2", "b", "neutral"]])
  assert [r["text"] for r in readers.nusax_sentiment("sun", "train")] == ["a", "b"]


def test_blank_lines_are_skipped(tmp_data_dir):
  path = _sun_train(tmp_data_dir)
  path.parent.mkdir(parents=True)
  path.write_text("id,text,label\n1,a,positive\n\n2,b,negative\n\n", encoding="utf-8")
  rows = readers.nusax_sentiment("sun", "train")
  assert [(r["id"], r["text"]) for r in rows] == [("1", "a"), ("2", "b")]


def test_bad_split():
  with pytest.raises(DataError, match=r"unknown split 'valid'; expected one of \['train', "
                     r"'validation', 'test'\]"):
    readers.nusax_sentiment("sun", "valid")


def test_flores_files_that_disagree(tmp_data_dir):
  header = ["index_id", "category", "text"]
  _write_csv(tmp_data_dir / "sib-200/data/annotated/sun_Latn/test.tsv",
             [header, ["1", "travel", "Hiji"], ["2", "health", "Dua"]], delimiter="\t")
  _write_csv(tmp_data_dir / "sib-200/data/annotated/eng_Latn/test.tsv",
             [header, ["1", "travel", "One"], ["3", "health", "Three"]], delimiter="\t")
  with pytest.raises(DataError, match=r"disagree on field 'index_id': only in sun: \['2'\], "
                     r"only in eng: \['3'\]"):
    readers.flores_pairs("sun", "eng", "test")


def test_malformed_csv_and_bad_encoding(tmp_data_dir):
  path = _sun_train(tmp_data_dir)
  path.parent.mkdir(parents=True)
  path.write_text('id,text,label\n1,a,positive\n2,"b"c,negative\n', encoding="utf-8")
  with pytest.raises(DataError, match=r"train\.csv, after line 2: malformed CSV"):
    readers.nusax_sentiment("sun", "train")
  path.write_bytes(b"id,text,label\n1,\xff\xfe,positive\n")
  with pytest.raises(DataError, match=r"train\.csv: not valid UTF-8"):
    readers.nusax_sentiment("sun", "train")
