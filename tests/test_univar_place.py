"""Placing a new LLM on a UniVaR value map, end to end on tiny random models: ask (sampled
and greedy), back-translate, embed and map; CSV formats, resumption and bad input."""

import csv
import importlib.util
import json
import pathlib
import shutil

import jax
import numpy as np
import pytest

import launcher  # tests/launcher.py

from underrep_jax import errors
from underrep_jax.evaluation import testing as eval_testing
from underrep_jax.jobs import univar as univar_job
from underrep_jax.jobs import univar_place as job
from underrep_jax.models import hf
from underrep_jax.models import runtime
from underrep_jax.models import testing as model_testing
from underrep_jax.train import checkpointing
from underrep_jax.univar import ask as ask_lib
from underrep_jax.univar import data as data_lib
from underrep_jax.univar import placement
from underrep_jax.univar import sampling

REPO = pathlib.Path(__file__).resolve().parents[1]
KNOWN_MODELS = ("alpha", "beta", "gamma")
LANGUAGES = ("eng", "ind")
QIDS = ("q1", "q2", "q3")


def _config(path: str, preset: str = "tiny"):
  spec = importlib.util.spec_from_file_location(pathlib.Path(path).stem, REPO / path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(preset)


def _place_config(stage: str, **fields):
  config = _config("configs/univar_place.py")
  config.stage = stage
  config.ask.chunk_size = 2  # several progress writes per language
  for key, value in fields.items():
    section = config
    *path, last = key.split(".")
    for part in path:
      section = section[part]
    section[last] = value
  return config


def _write_questions(path: pathlib.Path) -> None:
  """Three English questions; q2 also comes in Indonesian, so it is not translated."""
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["qid", "question", "lang"])
    writer.writerow(["q1", "Is it important to obey the law?", "eng"])
    writer.writerow(["q2", "Should family come before work?", "eng"])
    writer.writerow(["q2", "Apakah keluarga lebih penting daripada pekerjaan?", "ind"])
    writer.writerow(["q3", "Do you trust the government?", ""])


def _write_known_qas(folder: pathlib.Path) -> None:
  """The univar run's data: each identity leans to its own answer."""
  folder.mkdir()
  stances = ["strongly agree", "agree", "disagree", "strongly disagree"]
  for m, model in enumerate(KNOWN_MODELS):
    with open(folder / f"{model}.csv", "w", newline="", encoding="utf-8") as f:
      writer = csv.writer(f)
      writer.writerow(data_lib.UNIVAR_CSV_COLUMNS)
      for l, lang in enumerate(LANGUAGES):
        for q in range(8):
          writer.writerow([f"k{q}", f"Do you agree that value {q} matters?",
                           f"I {stances[(m + l + q % 2) % 4]} with it.", lang, model, "eng"])


def _tiny_encoder(path: pathlib.Path) -> pathlib.Path:
  """A tiny random BERT with all-MiniLM-L6-v2's WordPiece tokenizer: the univar run's
  encoder (MiniLM itself would triple the time of these tests)."""
  model_testing.save_tiny("bert", path, vocab_size=30522)
  for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
               "special_tokens_map.json"):
    shutil.copyfile(hf.minilm_path() / name, path / name)
  return path


def _read_csv(path: pathlib.Path) -> tuple[list[str], list[dict]]:
  with open(path, newline="", encoding="utf-8") as f:
    reader = csv.DictReader(f)
    return reader.fieldnames, list(reader)


def _univar_workdir(config, workdir: pathlib.Path) -> None:
  """A univar workdir as the job leaves it, without its training loop (half these tests'
  time): a checkpoint in the loop's layout (step, params, opt_state; the config) of the
  encoder, and the job's own evaluation, which draws value_map.csv from it."""
  source = runtime.ModelSource.from_config(config.model)
  params = jax.tree.map(np.asarray, source.load().params)
  checkpointer = checkpointing.Checkpointer(workdir / "checkpoints", async_save=False)
  checkpointer.save(2, {"step": np.int32(2), "params": params, "opt_state": {}}, 0, config)
  checkpointer.close()
  _, train, test = univar_job.prepare_qas(config)
  univar_job.evaluate(config, workdir, source.module(), source.tokenizer(),
                      source.special_ids().pad, params, params, train, test)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
  """Every stage once, in one process (models compile once), plus what the tests compare."""
  root = tmp_path_factory.mktemp("univar_place")
  eval_testing.save_tiny_lm(root / "lm_a", seed=0)
  eval_testing.save_tiny_lm(root / "lm_b", seed=2)
  eval_testing.save_tiny_lm(root / "translator", seed=1)
  _write_questions(root / "questions.csv")
  common = {"ask.questions": str(root / "questions.csv"), "ask.max_questions": 0,
            "translator.path": str(root / "translator")}
  ask = root / "ask"
  job.run(_place_config("ask", **common, **{"model.path": str(root / "lm_a"),
                                            "name": "tiny-a"}), ask)
  first = {p.name: p.read_bytes() for p in (ask / "progress").iterdir()}
  # Greedy, for a second model in the same workdir.
  job.run(_place_config("ask", **common, **{"model.path": str(root / "lm_b"), "name": "tiny-b",
                                            "sampling.temperature": 0.0}), ask)
  bt = root / "bt"
  job.run(_place_config("backtranslate", **common, **{"backtranslate.answers": str(ask)}), bt)

  _write_known_qas(root / "known")
  univar = root / "univar"
  config = _config("configs/univar.py")
  config.data.source, config.data.path = "univar_csv", str(root / "known")
  config.model.path = str(_tiny_encoder(root / "encoder"))
  config.views.max_qas, config.max_length, config.eval.max_length = 2, 48, 48
  config.eval.k, config.eval.views_per_identity, config.eval.view_probe.qas_per_view = 3, 3, ()
  config.eval.linear.epochs = 1
  config.train.steps, config.train.batch_size, config.train.checkpoint_every = 2, 8, 0
  _univar_workdir(config, univar)
  placed = root / "placed"
  job.run(_place_config("map", **{"map.qas": str(bt), "map.univar_workdir": str(univar),
                                  "map.nearest": 3}), placed)
  return {"root": root, "ask": ask, "bt": bt, "univar": univar, "placed": placed,
          "first_progress": first, "common": common}


def test_ask_writes_one_univar_csv_per_model(runs):
  ask = runs["ask"]
  assert sorted(p.name for p in (ask / "answers").iterdir()) == ["tiny-a.csv", "tiny-b.csv"]
  for name in ("tiny-a", "tiny-b"):
    header, rows = _read_csv(ask / "answers" / f"{name}.csv")
    assert header == list(data_lib.UNIVAR_CSV_COLUMNS)
    assert [(r["lang"], r["qid"]) for r in rows] == [(l, q) for l in LANGUAGES for q in QIDS]
    assert {r["model"] for r in rows} == {name}
    assert all(r["mt_lang"] == r["lang"] for r in rows)
  qas = data_lib.read_univar_csv(ask / "answers")
  assert {qa.identity for qa in qas} <= {f"{m}|{l}" for m in ("tiny-a", "tiny-b")
                                        for l in LANGUAGES}
  assert len(qas) > 8  # random models rarely answer with nothing
  questions = {(r["qid"], r["lang"]): r for r in
               map(json.loads, (ask / "progress" / "questions.jsonl").read_text().splitlines())}
  assert len(questions) == 6
  # Asked as written where the set has the language, else translated from English.
  assert not questions[("q2", "ind")]["translated"]
  assert questions[("q2", "ind")]["question"].startswith("Apakah")
  assert questions[("q1", "ind")]["translated"]
  assert questions[("q1", "ind")]["source_question"] == "Is it important to obey the law?"
  summary = json.loads((ask / "ask_summary_tiny-a.json").read_text())
  assert summary["rows"] == 6 and summary["answered_now"] == 6
  assert summary["questions_translated"] == 2 and summary["sampling"]["top_k"] == 50
  assert json.loads((ask / "ask_summary_tiny-b.json").read_text())["sampling"] == "greedy"


def test_second_ask_loads_no_model_and_changes_nothing(runs, monkeypatch):
  ask, root = runs["ask"], runs["root"]
  before = (ask / "answers" / "tiny-a.csv").read_bytes()

  def no_model(*args, **kwargs):
    raise AssertionError("a finished ask run loaded a model")

  monkeypatch.setattr(job, "load_model", no_model)
  summary = job.run_ask(_place_config("ask", **runs["common"], **{
      "model.path": str(root / "lm_a"), "name": "tiny-a"}), ask)
  assert summary["answered_now"] == 0
  assert (ask / "answers" / "tiny-a.csv").read_bytes() == before
  assert (ask / "progress" / "tiny-a.jsonl").read_bytes() == runs["first_progress"]["tiny-a.jsonl"]


def test_interrupted_ask_completes_with_the_same_answers(runs, tmp_path):
  """Half the rows done and a torn last line, as a kill leaves them: the re-run keeps
  the finished rows and samples the rest as an uninterrupted run did."""
  ask, root = runs["ask"], runs["root"]
  work = tmp_path / "ask"
  (work / "progress").mkdir(parents=True)
  shutil.copy(ask / "progress" / "questions.jsonl", work / "progress")
  lines = runs["first_progress"]["tiny-a.jsonl"].decode().splitlines(keepends=True)
  kept = lines[:3]
  kept[0] = json.dumps({**json.loads(kept[0]), "answer": "KEPT FROM BEFORE"}) + "\n"
  (work / "progress" / "tiny-a.jsonl").write_text("".join(kept) + lines[3][:20])
  summary = job.run_ask(_place_config("ask", **runs["common"], **{
      "model.path": str(root / "lm_a"), "name": "tiny-a"}), work)
  assert summary["answered_now"] == 3
  _, rows = _read_csv(work / "answers" / "tiny-a.csv")
  _, full = _read_csv(ask / "answers" / "tiny-a.csv")
  first = json.loads(kept[0])
  assert [r["answer"] for r in rows if (r["qid"], r["lang"]) == (first["qid"], first["lang"])] \
      == ["KEPT FROM BEFORE"]
  same = [(r["qid"], r["lang"]) != (first["qid"], first["lang"]) for r in rows]
  assert [r for r, s in zip(rows, same) if s] == [r for r, s in zip(full, same) if s]


def test_backtranslate_brings_rows_to_english_and_records_it(runs):
  bt, ask = runs["bt"], runs["ask"]
  assert sorted(p.name for p in (bt / "qas").iterdir()) == ["tiny-a.csv", "tiny-b.csv"]
  header, rows = _read_csv(bt / "qas" / "tiny-a.csv")
  assert header == list(data_lib.UNIVAR_CSV_COLUMNS)
  assert all(r["mt_lang"] == "eng" for r in rows)
  _, asked = _read_csv(ask / "answers" / "tiny-a.csv")
  asked = {(r["qid"], r["lang"]): r for r in asked if r["answer"].strip()}
  for row in rows:
    source = asked[(row["qid"], row["lang"])]
    if row["lang"] == "eng":
      assert (row["question"], row["answer"]) == (source["question"], source["answer"])
  # The English original of each question the ask stage translated, else a translation.
  by_key = {(r["qid"], r["lang"]): r for r in rows}
  if ("q1", "ind") in by_key:
    assert by_key[("q1", "ind")]["question"] == "Is it important to obey the law?"
  progress = [json.loads(l) for l in (bt / "progress" / "tiny-a.jsonl").read_text().splitlines()]
  froms = {(r["qid"], r["lang"]): r["question_from"] for r in progress}
  assert froms.get(("q2", "ind"), "translated") == "translated"  # asked as written in ind
  assert all(r["answer_translated"] == (r["lang"] != "eng") for r in progress)
  summary = json.loads((bt / "backtranslate_summary.json").read_text())["models"]["tiny-a"]
  assert summary["rows"] == len(rows)
  assert summary["answers_translated"] == sum(r["lang"] == "ind" for r in rows)
  assert data_lib.read_univar_csv(bt / "qas")
  # A second run translates nothing.
  again = job.run_backtranslate(_place_config("backtranslate", **runs["common"], **{
      "backtranslate.answers": str(ask)}), bt)
  assert all(m["translated_now"] == 0 for m in again["models"].values())


def test_map_places_new_identities_with_their_nearest(runs):
  placed, univar = runs["placed"], runs["univar"]
  new = sorted({qa.identity for qa in data_lib.read_univar_csv(runs["bt"] / "qas")})
  known = sorted(f"{m}|{l}" for m in KNOWN_MODELS for l in LANGUAGES)
  nearest = json.loads((placed / placement.NEAREST_JSON).read_text())
  assert sorted(nearest) == new
  for rows in nearest.values():
    assert len(rows) == 3 and {r["identity"] for r in rows} <= set(known)
    cosines = [r["cosine"] for r in rows]
    assert cosines == sorted(cosines, reverse=True)
  _, coords = _read_csv(placed / placement.PLACED_CSV)
  assert sorted(r["identity"] for r in coords if r["new"] == "0") == known
  assert sorted(r["identity"] for r in coords if r["new"] == "1") == new
  # The known identities sit where the univar run's own map put them.
  _, saved = _read_csv(univar / "value_map.csv")
  saved = {r["identity"]: (float(r["x"]), float(r["y"])) for r in saved}
  for row in coords:
    if row["new"] == "0":
      np.testing.assert_allclose((float(row["x"]), float(row["y"])), saved[row["identity"]],
                                 atol=1e-3)
  assert (placed / placement.PLACED_PNG).stat().st_size > 0
  report = (placed / "report.md").read_text()
  assert "transform" in report and new[0].replace("|", "\\|") in report
  _, near_rows = _read_csv(placed / placement.NEAREST_CSV)
  assert len(near_rows) == 3 * len(new)


def test_refit_projection_and_nearest():
  rng = np.random.default_rng(0)
  known, new = rng.normal(size=(6, 8)), rng.normal(size=(2, 8))
  known_coords, new_coords = placement.project(known, new, projection="refit")
  assert known_coords.shape == (6, 2) and new_coords.shape == (2, 2)
  ids = [f"m{i}|eng" for i in range(6)]
  near = placement.nearest_identities(known[:1] * 3.0, ["x|eng"], known, ids, k=2)
  assert near["x|eng"][0]["identity"] == "m0|eng"
  assert near["x|eng"][0]["cosine"] == pytest.approx(1.0)
  assert near["x|eng"][0]["euclidean"] == pytest.approx(0.0, abs=1e-3)


def test_sampling_filters_and_prompt_keys():
  logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]], np.float32))
  kept = np.asarray(sampling.filter_logits(logits, 1.0, top_k=3, top_p=1.0)) > -1e8
  assert kept.tolist() == [[True, True, True, False]]
  kept = np.asarray(sampling.filter_logits(logits, 1.0, top_k=0, top_p=0.7)) > -1e8
  assert kept.tolist() == [[True, True, False, False]]
  # A row's key depends on its real tokens only, not on padding.
  ids = np.array([[0, 0, 5, 6], [5, 6, 0, 0], [0, 6, 5, 0]], np.int32)
  mask = np.array([[0, 0, 1, 1], [1, 1, 0, 0], [0, 1, 1, 0]], np.int32)
  keys = np.asarray(sampling.prompt_keys(0, ids, mask))
  assert (keys[0] == keys[1]).all() and not (keys[0] == keys[2]).all()


def test_question_sets_have_unique_qids(data_dir):
  for questions in (data_lib.euvalues_questions(), data_lib.speechmap_questions()):
    qids = [q.qid for q in questions]
    assert len(qids) == len(set(qids)) > 10
    assert all(q.question and q.language == "eng" for q in questions)
  assert "Options: 1 (" in data_lib.euvalues_questions()[0].question


def test_bad_input_is_one_clear_error(runs, tmp_path):
  root = runs["root"]
  bad = tmp_path / "bad.csv"
  bad.write_text("id,question\nq1,Why?\n", encoding="utf-8")
  with pytest.raises(errors.DataError, match=r"bad\.csv, row 1 \(the header\), field 'qid'"):
    job.run(_place_config("ask", **{"ask.questions": str(bad), "model.path": str(root / "lm_a")}),
            tmp_path / "w1")
  with pytest.raises(errors.ConfigError, match="unknown language code 'xx'"):
    ask_lib.parse_languages("eng,xx", "ask.languages")
  no_tokenizer = tmp_path / "lm"
  shutil.copytree(root / "lm_a", no_tokenizer)
  (no_tokenizer / "tokenizer.json").unlink()
  with pytest.raises(errors.ModelError, match="tokenizer"):
    job.run(_place_config("ask", **{**runs["common"], "model.path": str(no_tokenizer),
                                    "ask.languages": "eng"}),
            tmp_path / "w2")
  result = launcher.run_main("--config=configs/univar_place.py", f"--workdir={tmp_path / 'w3'}",
                             f"--config.model.path={root / 'lm_a'}",
                             "--config.ask.languages=eng,xx", check=False)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1].startswith(
      "underrep_jax.main: configuration error: ask.languages: unknown language code 'xx'")


def test_prompt_templates(tmp_path):
  assert ask_lib.prompt_fn("USER: {question}\nASSISTANT:")("Why?") == "USER: Why?\nASSISTANT:"
  with pytest.raises(errors.ConfigError, match="no {question}"):
    ask_lib.prompt_fn("Answer:")
  (tmp_path / "tokenizer_config.json").write_text(json.dumps({
      "bos_token": "<s>", "chat_template": (
          "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}"
          "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")}))
  chat = ask_lib.prompt_fn(ask_lib.CHAT_TEMPLATE, tmp_path)
  assert chat("Why?") == "<s><|user|>Why?<|assistant|>"
  with pytest.raises(errors.ModelError, match="tokenizer_config.json"):
    ask_lib.prompt_fn(ask_lib.CHAT_TEMPLATE, tmp_path / "missing")
  assert ask_lib.model_name("", "org/Model-7B-Instruct") == "Model-7B-Instruct"
  assert ask_lib.model_name("", "runs/ia_tiny/export") == "ia_tiny"
