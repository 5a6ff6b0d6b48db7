"""Experience replay as the original: seeded shuffle then the first r, strict 1:1 turns
with the smaller stream cycled, xP3's space join for decoder-only models, clear errors."""

import json

import datasets
import numpy as np
import pytest
import seqio

import tasks
from underrep_jax.data import seqio_pipeline as sp
from underrep_jax.data.errors import DataError

BYTES = seqio.ByteVocabulary()
ALIGNMENT = "instructalign_mt_flores_eng"


def _text(ex, key: str) -> str:
  return BYTES.decode([int(i) for i in ex[key]])


def _rows(n: int, tag: str = "replay") -> list[dict]:
  return [{"id": f"{tag}{i}", "inputs": f"{tag} question {i}?", "targets": f"answer {i}"}
          for i in range(n)]


def _jsonl(path, rows):
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  return path


def _stream(name: str, n: int, seed: int = 1) -> list[dict]:
  ds = seqio.get_mixture_or_task(name).get_dataset(
      sequence_length=None, split="train", shuffle=True, seed=seed, num_epochs=None)
  return list(ds.take(n).as_numpy_iterator())


def _replay_number(ex) -> int | None:
  text = _text(ex, "inputs")
  return int(text.split()[-1].rstrip("?")) if text.startswith("replay question") else None


def test_sample_is_a_seeded_shuffle_then_the_first_r():
  rows = _rows(50)
  sample = sp.first_after_shuffle(rows, 10, seed=3, where="x")
  assert [r["id"] for r in sample] == [
      rows[i]["id"] for i in np.random.default_rng(3).permutation(50)[:10]]
  assert sample == sp.first_after_shuffle(rows, 10, seed=3, where="x")  # same seed, same r
  assert sample != sp.first_after_shuffle(rows, 10, seed=4, where="x")
  assert [r["id"] for r in sample] != [r["id"] for r in rows[:10]]  # not the file's head


def test_replay_by_count_alternates_strictly_and_cycles_the_r_examples(tmp_path):
  path = _jsonl(tmp_path / "xp3.jsonl", _rows(50))
  name = tasks.replay.with_replay(ALIGNMENT, str(path), num_examples=3, seed=7)
  stream = _stream(name, 40)
  numbers = [_replay_number(ex) for ex in stream]
  assert all(n is not None for n in numbers[0::2])  # replay first, then every other one
  assert all(n is None for n in numbers[1::2])
  expected = {int(i) for i in np.random.default_rng(7).permutation(50)[:3]}
  assert set(numbers[0::2]) == expected  # 20 turns over 3 examples: cycled


def test_the_smaller_alignment_stream_is_cycled_too(tmp_path):
  alignment = tasks.replay.jsonl_task(_jsonl(tmp_path / "align.jsonl", _rows(2, "align")))
  path = _jsonl(tmp_path / "big.jsonl", _rows(30))
  name = tasks.replay.with_replay(alignment, str(path), num_examples=20, seed=0)
  stream = _stream(name, 40)
  aligned = [_text(ex, "inputs") for ex in stream[1::2]]
  assert set(aligned) == {"align question 0?", "align question 1?"}  # 20 turns of 2
  replayed = {_replay_number(ex) for ex in stream[0::2]}
  assert replayed <= {int(i) for i in np.random.default_rng(0).permutation(30)[:20]}
  assert len(replayed) > 2  # the replay stream goes on while the alignment one cycles


def test_decoder_only_replay_joins_inputs_and_targets_with_one_space(tmp_path):
  path = _jsonl(tmp_path / "join.jsonl", _rows(5))
  for separator, want in ((" ", " answer"), ("", "answer")):
    name = tasks.replay.file_task(str(path), num_examples=5, seed=0, separator=separator)
    for ex in _stream(name, 5):
      inputs, targets = _text(ex, "inputs"), _text(ex, "targets")
      assert targets.startswith(want)
      number = inputs.split()[-1].rstrip("?")
      if separator:  # what the model reads is xP3's f"{inputs} {targets}"
        assert inputs + targets == f"replay question {number}? answer {number}"


def test_a_local_hugging_face_dataset_directory(tmp_path):
  saved = tmp_path / "saved"
  datasets.Dataset.from_list(_rows(12)).save_to_disk(str(saved))
  files = tmp_path / "files"
  files.mkdir()
  datasets.Dataset.from_list(_rows(12)).to_parquet(str(files / "part-0.parquet"))
  for source in (saved, files):
    name = tasks.replay.with_replay(ALIGNMENT, str(source), num_examples=4, seed=2)
    numbers = [_replay_number(ex) for ex in _stream(name, 24)[0::2]]
    assert set(numbers) == {int(i) for i in np.random.default_rng(2).permutation(12)[:4]}


def test_more_replay_examples_than_the_source_is_an_error_naming_both(tmp_path):
  path = _jsonl(tmp_path / "small.jsonl", _rows(50))
  name = tasks.replay.with_replay(ALIGNMENT, str(path), num_examples=100)
  with pytest.raises(DataError, match=r"small\.jsonl: replay_examples=100 but the source "
                                      r"has only 50 examples"):
    _stream(name, 2)


def test_bad_replay_settings_are_errors(tmp_path):
  path = _jsonl(tmp_path / "r.jsonl", _rows(5))
  with pytest.raises(ValueError, match="not both"):
    tasks.replay.with_replay(ALIGNMENT, str(path), num_examples=3, rate=0.5)
  with pytest.raises(ValueError, match="replay_examples"):
    tasks.replay.with_replay(ALIGNMENT, "hf:bigscience/xP3:en", rate=0.5)
  bad = tmp_path / "bad"
  datasets.Dataset.from_list([{"inputs": "q", "answer": "a"}]).save_to_disk(str(bad))
  with pytest.raises(DataError, match=r"bad, row 0, field 'targets'"):
    sp.read_dataset_dir(bad)
