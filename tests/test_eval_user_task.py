"""A user's own classification task over a CSV, registered by module, as the README shows."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import seqio

import launcher  # tests/launcher.py
from underrep_jax import errors
from underrep_jax.data import eval_tasks
from underrep_jax.evaluation import testing

REVIEWS = [("Film iki apik banget", "good"), ("Panganane ora enak", "bad"),
           ("Pelayanane cepet lan ramah", "good"), ("Regane larang banget", "bad"),
           ("Aku seneng karo hotel iki", "good")]

# The README's worked example ("Evaluating your own task"), with the CSV path filled in.
MODULE = textwrap.dedent('''\
    from underrep_jax.data import eval_tasks

    eval_tasks.register_csv_classification(
        "my_reviews", {{"test": {path!r}}}, labels=("bad", "good"),
        templates=("Review in {{language}}: {{text}}\\nIs it {{options}}? Answer:",
                   "{{text}}\\nThe review is"),
        language="jav")
    ''')


def _write_csv(path, rows, header="text,label"):
  lines = [header] + [f'"{text}",{label}' for text, label in rows]
  path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_user_csv_task_evaluates_from_its_module(tmp_path):
  model = tmp_path / "model"
  testing.save_tiny_lm(model)
  _write_csv(tmp_path / "reviews.csv", REVIEWS)
  (tmp_path / "my_tasks.py").write_text(MODULE.format(path=str(tmp_path / "reviews.csv")))
  workdir = tmp_path / "eval"
  env_path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)
  os.environ["PYTHONPATH"] = env_path  # the launcher's subprocess imports my_tasks from here
  try:
    launcher.run_main("--config=configs/evaluate.py", f"--workdir={workdir}",
                      f"--config.model.path={model}", "--config.task_modules=my_tasks",
                      "--config.tasks=my_reviews", "--config.mt_tasks=", "--config.languages=")
  finally:
    os.environ["PYTHONPATH"] = env_path.split(os.pathsep, 1)[1] if os.pathsep in env_path else ""
  records = [json.loads(l) for l in (workdir / "predictions.jsonl").read_text().splitlines()]
  assert len(records) == 2 * len(REVIEWS)  # two prompt variants
  assert {r["prompt"] for r in records} == {"eng0", "eng1"}
  assert [r["gold"] for r in records[:len(REVIEWS)]] == [label for _, label in REVIEWS]
  assert all(set(r["scores"]) == {"bad", "good"} for r in records)
  assert {r["language"] for r in records} == {"jav"}
  metrics = json.loads((workdir / "metrics.json").read_text())
  assert set(metrics["my_reviews"]["jav"]["prompts"]) == {"eng0", "eng1"}
  assert "my_reviews" in (workdir / "report.md").read_text()


def test_show_lists_and_prints_a_user_task(tmp_path):
  _write_csv(tmp_path / "reviews.csv", REVIEWS)
  (tmp_path / "my_tasks.py").write_text(MODULE.format(path=str(tmp_path / "reviews.csv")))
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      p for p in (str(tmp_path), str(launcher.REPO), os.environ.get("PYTHONPATH")) if p))
  run = lambda *args: subprocess.run(
      [sys.executable, "-m", "underrep_jax.show", "--task_modules=my_tasks", *args],
      capture_output=True, text=True, env=env, cwd=launcher.REPO, timeout=300)
  listed = run("--list", "--filter=my_")
  assert listed.returncode == 0, listed.stderr[-2000:]
  assert "my_reviews" in listed.stdout.splitlines()
  shown = run("my_reviews", "--split=test", "-n", "1")
  assert shown.returncode == 0, shown.stderr[-2000:]
  assert "Review in Javanese: Film iki apik banget" in shown.stdout


def test_unknown_task_module_and_name_are_one_line(tmp_path):
  result = launcher.run_main("--config=configs/evaluate.py", f"--workdir={tmp_path}",
                             "--config.model.path=x", "--config.task_modules=no_such_module",
                             check=False)
  assert result.returncode == 2
  assert "config.task_modules: cannot import 'no_such_module'" in result.stderr.splitlines()[-1]
  result = launcher.run_main("--config=configs/evaluate.py", f"--workdir={tmp_path}",
                             "--config.model.path=x", "--config.tasks=nusax_sent",
                             check=False)
  assert result.returncode == 2
  assert "close registered names: nusax_senti" in result.stderr.splitlines()[-1]


def test_language_filter_that_leaves_nothing_is_an_error(tmp_path):
  result = launcher.run_main("--config=configs/evaluate.py", f"--workdir={tmp_path}",
                             "--config.model.path=x", "--config.languages=xyz",
                             check=False)
  assert result.returncode == 2
  assert "nusax_senti has no task for the requested languages" in result.stderr


@pytest.mark.parametrize("content,message", [
    ("words,label\nhi,good\n", "row 1: no column 'text'"),
    ("text,label\nhi,good\n,bad\n", "row 3, field 'text': empty text"),
    ("text,label\nhi,good\nho,meh\n", "row 3, field 'label': label 'meh' is not one of bad, good"),
])
def test_csv_rows_name_file_row_and_field(tmp_path, content, message):
  path = tmp_path / "bad.csv"
  path.write_text(content)
  with pytest.raises(errors.DataError, match=message) as info:
    eval_tasks.csv_rows(path, labels=("bad", "good"))
  assert str(path) in str(info.value)


def test_classification_task_declares_labels_and_prompts(tmp_path):
  _write_csv(tmp_path / "r.csv", REVIEWS)
  task = eval_tasks.register_csv_classification(
      "test_declared_reviews", {"test": tmp_path / "r.csv"}, labels=("bad", "good"),
      templates=("{text} ->",), verbalizer={"bad": "negative", "good": "positive"})
  try:
    _check_declared(task)
  finally:  # other tests walk the registry; this task's file is gone after the test
    seqio.TaskRegistry.remove("test_declared_reviews")


def _check_declared(task):
  assert seqio.get_mixture_or_task("test_declared_reviews") is task
  assert task.labels == ("bad", "good")
  assert [p.answer("good") for p in task.prompts] == [" positive"]
  rows = eval_tasks.examples(task, "test", limit=2)
  assert [(r["text"], r["label"]) for r in rows] == REVIEWS[:2]
  with pytest.raises(errors.DataError, match="has no 'train' split"):
    eval_tasks.examples(task, "train")
  with pytest.raises(ValueError, match="no answer for labels"):
    eval_tasks.ClassificationTask(
        "bad_prompts", task.source, task.output_features, labels=("bad", "good", "meh"),
        prompts=task.prompts)
