"""files.write_json / write_jsonl / read_jsonl: the shared small JSON writers and reader."""

import json

import pytest

from underrep_jax import files


def test_write_json_is_indented_with_a_trailing_newline(tmp_path):
  path = tmp_path / "sub" / "summary.json"  # parent directories are created
  files.write_json(path, {"step": 3, "loss": 0.5, "names": ["a", "b"]})
  text = path.read_text()
  assert text == '{\n  "step": 3,\n  "loss": 0.5,\n  "names": [\n    "a",\n    "b"\n  ]\n}\n'
  assert json.loads(text) == {"step": 3, "loss": 0.5, "names": ["a", "b"]}


def test_jsonl_round_trip_keeps_non_ascii_text_readable(tmp_path):
  rows = [{"id": 1, "text": "Bahasa Sunda: ᮞᮥᮔ᮪ᮓ"}, {"id": 2, "text": "中文"}, []]
  path = files.write_jsonl(tmp_path / "rows.jsonl", rows)
  assert "ᮞᮥᮔ᮪ᮓ" in path.read_text(encoding="utf-8")  # not \u escapes
  assert len(path.read_text(encoding="utf-8").splitlines()) == 3
  assert files.read_jsonl(path) == rows


def test_a_nan_row_is_refused_and_the_old_file_stays(tmp_path):
  path = files.write_jsonl(tmp_path / "rows.jsonl", [{"score": 1.0}])
  with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
    files.write_jsonl(path, [{"score": 2.0}, {"score": float("nan")}])
  assert files.read_jsonl(path) == [{"score": 1.0}]
  assert [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]  # no temporary left behind


def test_read_jsonl_names_the_bad_line(tmp_path):
  path = tmp_path / "rows.jsonl"
  path.write_text('{"a": 1}\n\n{"a": 2\n', encoding="utf-8")
  with pytest.raises(ValueError, match=r"rows\.jsonl:3: not a JSON line"):
    files.read_jsonl(path)
