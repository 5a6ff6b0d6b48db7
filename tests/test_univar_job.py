"""The UniVaR job end to end on a small UniVaR-format CSV folder: train, probes, map,
resume; and its epoch arithmetic against the original's."""

import csv
import json
import pathlib

import ml_collections
import pytest

import launcher  # tests/launcher.py

from underrep_jax.jobs import univar as univar_job
from underrep_jax.univar import data as data_lib
from underrep_jax.univar import probes

MODELS = ("alpha", "beta", "gamma", "delta")
LANGUAGES = ("eng", "ind")
QUESTIONS = 12
SMALL_MODEL = "epsilon"
SMALL = ["--config.data.source=univar_csv", "--config.views.max_qas=2",
         "--config.max_length=48", "--config.eval.max_length=48", "--config.eval.k=5",
         "--config.eval.views_per_identity=3", "--config.train.batch_size=4",
         "--config.train.log_every=1", "--config.train.checkpoint_every=0",
         "--config.train.steps=3", "--config.eval.probe_every=2",
         "--config.eval.view_probe.qas_per_view=(1,2)", "--config.eval.view_probe.train_views=3",
         "--config.eval.view_probe.test_views=2", "--config.eval.view_probe.max_length=48"]


def _write_csvs(folder: pathlib.Path) -> None:
  """One CSV per model; each identity leans to its own answer, so it has a signal."""
  folder.mkdir()
  stances = ["strongly agree", "agree", "disagree", "strongly disagree"]
  for m, model in enumerate(MODELS):
    with open(folder / f"{model}.csv", "w", newline="", encoding="utf-8") as f:
      writer = csv.writer(f)
      writer.writerow(["qid", "question", "answer", "lang", "model", "mt_lang"])
      for l, lang in enumerate(LANGUAGES):
        for q in range(QUESTIONS):
          stance = stances[(m + l + (q % 3 == 0)) % len(stances)]
          writer.writerow([f"q{q}", f"Do you agree that value number {q} matters?",
                           f"I {stance} with statement {q}.", lang, model, "eng"])
  # A small identity: 2 train questions and 1 test question, too few for two disjoint
  # views of up to λ=2 QAs; the original's independent views still train on it.
  qids = [f"q{q}" for q in range(QUESTIONS)]
  train, test = data_lib.split_qas([data_lib.QA("x|eng", "x", "eng", q, "?", "!") for q in qids],
                                   test_fraction=0.2, seed=0)
  with open(folder / f"{SMALL_MODEL}.csv", "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["qid", "question", "answer", "lang", "model", "mt_lang"])
    for qa in train[:2] + test[:1]:
      writer.writerow([qa.qid, f"Do you agree that value {qa.qid} matters?",
                       "I have no opinion.", "eng", SMALL_MODEL, "eng"])


def _run(workdir: pathlib.Path, data: pathlib.Path) -> None:
  launcher.run_main("--config=configs/univar.py:tiny", f"--workdir={workdir}",
                    f"--config.data.path={data}", *SMALL)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  root = tmp_path_factory.mktemp("univar_job")
  data, workdir = root / "qas", root / "run"
  _write_csvs(data)
  _run(workdir, data)
  first = (workdir / "metrics.jsonl").read_text().splitlines()
  _run(workdir, data)
  return workdir, first


def test_trains_evaluates_and_maps(trained):
  workdir, first = trained
  assert [json.loads(l)["step"] for l in first] == [1, 2, 3]
  assert all("pair_accuracy" in json.loads(l) for l in first)
  # The probe hook ran at step 2 only, on the encoder as trained so far.
  probed = [json.loads(l) for l in first if "probe/knn_acc" in json.loads(l)]
  assert [m["step"] for m in probed] == [2]
  assert 0.0 <= probed[0]["probe/knn_acc"] <= 1.0
  results = json.loads((workdir / "univar_eval.json").read_text())
  assert results["num_identities"] == len(MODELS) * len(LANGUAGES) + 1  # + the small one
  for name in ("univar", "base", "tfidf"):
    assert set(results[name]) == set(probes.METRICS)
    assert all(0.0 <= v <= 1.0 for v in results[name].values())
  views = results["view_probe"]
  assert views["qas_per_view"] == [1, 2] and views["max_length"] == 48
  assert (views["train_views_per_identity"], views["test_views_per_identity"]) == (3, 2)
  for m in ("1", "2"):
    for name in ("univar", "base", "tfidf"):
      assert set(views["by_size"][m][name]) == set(probes.METRICS)
    assert 0.0 <= views["by_size"][m]["truncated_share"] <= 1.0
  # The small identity has 1 test QA: its views of m=2 hold that one.
  assert views["by_size"]["1"]["capped_identities"] == 0
  assert views["by_size"]["2"]["capped_identities"] == 1
  with open(workdir / "value_map.csv", newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert sorted(r["identity"] for r in rows) == sorted(
      [f"{m}|{l}" for m in MODELS for l in LANGUAGES] + [f"{SMALL_MODEL}|eng"])
  assert (workdir / "value_map.png").stat().st_size > 0
  assert (workdir / "identity_similarity.png").stat().st_size > 0
  report = (workdir / "report.md").read_text()
  assert "| univar |" in report and "| 2 | univar |" in report


def test_second_run_resumes_without_training(trained):
  workdir, first = trained
  # The second run restored step 3 and trained no further: no new metric lines.
  assert (workdir / "metrics.jsonl").read_text().splitlines() == first
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == ["3"]
  summary = json.loads((workdir / "univar_summary.json").read_text())
  assert summary["step"] == 3 and summary["identities"] == 9
  assert summary["trained_identities"] == 9  # independent views: none left out


def _steps_config(epochs, batch_size, max_qas, steps=7):
  return ml_collections.ConfigDict({"train": {"epochs": epochs, "batch_size": batch_size,
                                              "steps": steps},
                                    "views": {"max_qas": max_qas}})


@pytest.mark.parametrize("num_qas, batch_size, epochs", [(10_000, 64, 3), (1_000, 64, 3),
                                                         (127_000, 64, 3), (130, 64, 1)])
def test_epochs_count_passes_over_the_qas_as_the_original(num_qas, batch_size, epochs):
  """The original (contrastors' CLIPTrainer on MultiViewValueQADataset): one sample per QA,
  len(dataset) // batch steps per epoch (drop_last), times num_epochs; λ plays no part."""
  original = int(num_qas / 1 // batch_size) * epochs
  for max_qas in (1, 5, 20, 80):
    assert univar_job.resolve_steps(_steps_config(epochs, batch_size, max_qas), num_qas) == original
  assert univar_job.resolve_steps(_steps_config(0.0, batch_size, 5), num_qas) == 7  # steps


@pytest.mark.parametrize("disjoint, trained", [(False, 9), (True, 8)])
def test_disjoint_views_leave_small_identities_out_of_training(tmp_path, disjoint, trained):
  _write_csvs(tmp_path / "qas")
  config = ml_collections.ConfigDict({
      "data": {"source": "univar_csv", "path": str(tmp_path / "qas"), "max_answer_words": 0,
               "test_fraction": 0.2, "split_seed": 0, "split_unit": "question"},
      "views": {"max_qas": 2, "disjoint": disjoint}})
  view_qas, train, test = univar_job.prepare_qas(config)
  assert len({qa.identity for qa in view_qas}) == trained
  assert len({qa.identity for qa in train}) == len({qa.identity for qa in test}) == 9
