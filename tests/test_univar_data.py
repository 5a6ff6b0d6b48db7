"""UniVaR readers on the real EUValues and SpeechMap files, the original CSV format, splits."""

import collections
import csv

import pytest

from underrep_jax.data.errors import DataError
from underrep_jax.univar import data


@pytest.fixture(scope="module")
def euvalues():
  skipped = {}
  return data.read_euvalues(skipped=skipped), skipped


@pytest.fixture(scope="module")
def speechmap():
  skipped = {}
  return data.read_speechmap(skipped=skipped), skipped


def _gb_rows(data_dir):
  with open(data_dir / "euvalues" / data.GB_SURVEY, newline="", encoding="utf-8") as f:
    return list(csv.DictReader(f))


def test_euvalues_has_49_identities(euvalues):
  qas, _ = euvalues
  groups = data.group_by_identity(qas)
  assert len(groups) == 49
  assert {qa.model for qa in qas} == {"apertus", "apertus-70B", "eurollm", "gemma",
                                      "minimistral3", "qwen", "salamandra"}
  assert {qa.language for qa in qas} == set(data.EUVALUES_LANGUAGES.values())
  # Counts verified against the files (see the readers' skip rules).
  assert len(qas) == 5419
  assert len(groups["qwen|eng"]) == 224
  assert len(groups["gemma|spa"]) == 77
  assert len(groups["gemma|hun"]) == 94  # most by the label's position (choice_by_position)
  assert min(len(g) for g in groups.values()) == 14  # apertus-70B|hun
  for group in groups.values():
    assert len({qa.qid for qa in group}) == len(group)


def test_euvalues_skips_are_counted(euvalues):
  _, skipped = euvalues
  total = collections.Counter()
  for counts in skipped.values():
    total.update(counts)
  assert total["failed_status"] == 264  # every non-success row, all from minimistral3
  assert sum(skipped["minimistral3|eng"].values()) == 229 - 178
  assert skipped["qwen|eng"] == {"no_gb_item": 1, "repeated_item": 1, "unparseable_response": 3}


def test_euvalues_renders_gb_texts(euvalues, data_dir):
  qas, _ = euvalues
  gb = _gb_rows(data_dir)
  gb_questions = {r["Question Text"].strip() for r in gb}
  gb_scales = "\n".join(r["Response_Scale"] for r in gb)
  for qa in qas:
    assert qa.question.split(" — ")[0] in gb_questions, qa
    assert qa.answer.split(" on a scale from ")[0] in gb_scales, qa
  by_key = {(qa.identity, qa.qid): qa for qa in qas}
  # gemma asked in Spanish, v1: "Trabajo", "Final answer: @@1@@" -> "1 (very important)".
  qa = by_key[("gemma|spa", "v1")]
  assert qa.question == ("Please say, for each of the following, how important it is in "
                         "your life. — Work")
  assert qa.answer == "very important"
  assert qa.source.endswith("llm_survey_gemma_responses_es.csv") and qa.row == 2
  # gemma asked in Hungarian, v22 (row 23): the scale "említette, nem említette, NT, NV"
  # has no codes; "@@nem említette@@" is its 2nd label, gb code 2 "not mentioned".
  qa = by_key[("gemma|hun", "v22")]
  assert qa.answer == "not mentioned" and qa.row == 23


def test_choice_by_position():
  gb = {1: "mentioned", 2: "not mentioned", 8: "Don't Know, DK", 9: "Not Answer, NA"}
  all_four = "említette, nem említette, NT, NV"
  assert data.choice_by_position("Final answer: @@nem említette@@", all_four, gb) == 2
  assert data.choice_by_position("Final answer: @@NV@@", all_four, gb) == 9
  assert data.choice_by_position("@@Említette.@@", all_four, gb) == 1
  # Only the substantive options listed: positions map onto gb 1, 2.
  assert data.choice_by_position("nem említette", "említette - nem említette", gb) == 2
  # Three labels for four codes (options merged or reordered): no safe mapping.
  assert data.choice_by_position("@@NV@@", "nem említette, NV, NT", gb) is None
  assert data.choice_by_position("@@valami más@@", all_four, gb) is None
  assert data.choice_by_position("Válasz: NT", all_four, gb) == 8


def test_parse_choice_and_scales():
  scale = data.parse_scale("1 (Yes, own parent(s)) - 2 (No) - 8 (Don't Know, DK) - 9 (Not "
                           "Answer, NA)")
  assert scale == {1: "Yes, own parent(s)", 2: "No", 8: "Don't Know, DK", 9: "Not Answer, NA"}
  assert data.parse_scale("1 - nagyon fontos, 2 - elég fontos, 8 - Nem tudom") == {
      1: "nagyon fontos", 2: "elég fontos", 8: "Nem tudom"}
  assert data.parse_scale("01.Один - 02.Два") == {1: "Один", 2: "Два"}
  assert data.parse_scale("nem említette, NV, NT") is None
  for response, code in [("Final answer: @@1@@", 1), ("Final answer: 2", 2), ("8", 8),
                         ("Final answer: 2@@", 2), ("Final answer: @@<9>@@", 9),
                         ("Final answer: 1 (Neví)", 1), ("Final answer: @@No@@", 2),
                         ("DK", 8), ("Final answer: @@nan@@", None), ("", None)]:
    assert data.parse_choice(response, scale) == code, response
  ten = data.parse_scale("1 (never) - 2 - 3 - 10 (always) - 88 (Don't Know, DK)")
  assert data.render_gb_answer(3, ten) == "3 on a scale from 1 (never) to 10 (always)"
  assert data.render_gb_answer(88, ten) == "Don't Know, DK"


def test_speechmap_identities(speechmap):
  qas, skipped = speechmap
  groups = data.group_by_identity(qas)
  # 37 models in English and Finnish, 36 in Chinese (kimi-vl-a3b-thinking has no zh_ file).
  assert len(groups) == 110
  assert len({qa.model for qa in qas}) == 37
  assert collections.Counter(data.split_identity(i)[1] for i in groups) == {
      "eng": 37, "fin": 37, "zho": 36}
  assert min(len(g) for g in groups.values()) == 42  # qwen-max in Chinese
  assert len(qas) == 5488
  assert skipped == {"openai_o1-preview-2024-09-12|eng": {"no_content": 1},
                     "qwen_qwen-max|eng": {"no_content": 3},
                     "qwen_qwen-max|zho": {"no_content": 8}}
  assert "moonshotai_kimi-vl-a3b-thinking|zho" not in groups
  assert all(len(qa.answer.split()) <= 256 for qa in qas)


def test_speechmap_truncate_callable():
  qas = data.read_speechmap(truncate=lambda text: text[:10])
  assert max(len(qa.answer) for qa in qas) == 10


def _write_univar_csv(path, rows, columns=data.UNIVAR_CSV_COLUMNS):
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)


def _row(qid, model, lang, answer="Family matters most."):
  return {"qid": qid, "question": "What matters?", "answer": answer, "lang": lang,
          "model": model, "mt_lang": "en"}


def test_univar_csv_reader(tmp_path):
  _write_univar_csv(tmp_path / "m1.csv", [_row("1", "m1", "fr"), _row("2", "m1", "fr"),
                                          _row("1", "m1", "de", answer="")])
  _write_univar_csv(tmp_path / "m2.csv", [_row("1", "m2", "fr", answer="one two three")])
  skipped = {}
  qas = data.read_univar_csv(tmp_path, max_answer_words=2, skipped=skipped)
  assert [(qa.identity, qa.qid, qa.row) for qa in qas] == [("m1|fr", "1", 2), ("m1|fr", "2", 3),
                                                           ("m2|fr", "1", 2)]
  assert qas[2].answer == "one two"
  assert qas[0].question == "What matters?"
  assert skipped == {"m1|de": {"empty_question_or_answer": 1}}


def test_univar_csv_missing_column(tmp_path):
  columns = [c for c in data.UNIVAR_CSV_COLUMNS if c != "answer"]
  _write_univar_csv(tmp_path / "m1.csv", [_row("1", "m1", "fr")], columns)
  with pytest.raises(DataError, match=r"m1\.csv, row 1 \(the header\), field 'answer'"):
    data.read_univar_csv(tmp_path)


def test_univar_csv_empty_model(tmp_path):
  _write_univar_csv(tmp_path / "m1.csv", [_row("1", "m1", "fr"), _row("2", "", "fr")])
  with pytest.raises(DataError, match=r"m1\.csv, row 3, field 'model'"):
    data.read_univar_csv(tmp_path)


def test_univar_csv_empty_folder(tmp_path):
  with pytest.raises(DataError, match="no \\*.csv"):
    data.read_univar_csv(tmp_path)


@pytest.mark.parametrize("unit", data.SPLIT_UNITS)
def test_split_is_deterministic(speechmap, unit):
  qas, _ = speechmap
  keys = lambda split: {(q.identity, q.qid) for q in split}
  train, test = data.split_qas(qas, test_fraction=0.2, seed=3, unit=unit)
  _, again_test = data.split_qas(list(reversed(qas)), test_fraction=0.2, seed=3, unit=unit)
  assert keys(test) == keys(again_test)
  assert len(train) + len(test) == len(qas) and not keys(train) & keys(test)
  assert {q.identity for q in test} == {q.identity for q in qas}
  assert sum(q.identity == "anthropic_claude-3-5-sonnet-20241022|eng" for q in test) == 10
  _, other_test = data.split_qas(qas, test_fraction=0.2, seed=4, unit=unit)
  assert keys(other_test) != keys(test)


def test_question_split_holds_out_questions_for_everyone(speechmap):
  qas, _ = speechmap
  train, test = data.split_qas(qas, test_fraction=0.2, seed=0)
  assert len({q.qid for q in test}) == 10
  assert not {q.qid for q in train} & {q.qid for q in test}


def test_qa_split_is_per_identity(speechmap):
  qas, _ = speechmap
  _, test = data.split_qas(qas, test_fraction=0.2, seed=0, unit="qa")
  assert len({q.qid for q in test}) > 10  # identities hold out different questions
