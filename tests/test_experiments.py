"""The experiments runner (`underrep_jax/experiments/`, job `experiment`): the miniature
experiment's micro preset end to end, listing, resumption, refusals; the paper grid's
listing and its stages' configs.

The micro run happens once per module, in a subprocess as users run it (about two
minutes on a 2-core CPU); the other tests read its workdir or run in-process.
"""

import json
import pathlib
import shutil

import ml_collections
import pytest

import launcher  # tests/launcher.py
import test_plan  # tests/test_plan.py: runs plan as users do
from underrep_jax import errors
from underrep_jax.experiments import configs as exp_configs
from underrep_jax.experiments import report
from underrep_jax.experiments import runner

MINIATURE = launcher.REPO / "configs" / "experiments" / "miniature.py"
PAPER = launcher.REPO / "configs" / "experiments" / "instructalign_paper.py"
MICRO_STAGES = ["base_s0", "align_s0", "align_replay_s0", "control_s0", "eval_base_s0",
                "eval_align_s0", "eval_align_replay_s0", "eval_control_s0", "compare"]


def _load(path: pathlib.Path, preset: str | None = None) -> ml_collections.ConfigDict:
  return exp_configs.load_job_config(path, preset)


def _run(workdir: pathlib.Path, *args: str, check: bool = True):
  return launcher.run_main(f"--config={MINIATURE}:micro", f"--workdir={workdir}", *args,
                           check=check)


def _error_lines(result) -> list[str]:
  return [l for l in result.stderr.splitlines() if l.startswith("underrep_jax.main:")]


@pytest.fixture(scope="module")
def micro(tmp_path_factory) -> pathlib.Path:
  workdir = tmp_path_factory.mktemp("experiment") / "micro"
  result = _run(workdir)
  assert "ran 9 stage(s)" in result.stdout, result.stdout + result.stderr[-3000:]
  return workdir


def test_micro_runs_every_stage_and_writes_the_report(micro):
  for name in MICRO_STAGES:
    done = json.loads((micro / name / runner.DONE_FILE).read_text())
    assert done["stage"] == name and done["hash"]
  for name in ("base_s0", "align_s0", "align_replay_s0", "control_s0"):
    assert (micro / name / "export" / "config.json").is_file(), name
  assert "replay" in json.loads(
      (micro / "align_replay_s0" / "instructalign_summary.json").read_text())["mixture"]
  for name in MICRO_STAGES[4:8]:
    assert (micro / name / "metrics.json").is_file(), name
  for out in (micro, micro / "compare"):
    assert {"report.md", "report.json", "report.png"} <= {p.name for p in out.iterdir()}
  result = json.loads((micro / "report.json").read_text())
  assert result["variants"] == ["base", "align", "align_replay", "control"]
  assert set(result["tasks"]) == {"nusax_senti", "nusatranslation_senti"}
  nusax = result["tasks"]["nusax_senti"]["align"]
  assert {"pretrained", "seen", "unseen", "all"} <= set(nusax)
  assert {"mean", "std", "min", "max", "n"} <= set(nusax["seen"])
  assert result["baselines"]["nusax_senti"]["majority"]["all"] > 0
  text = (micro / "report.md").read_text()
  assert "## Claims" in text and "unseen languages gain less than seen" in text
  assert all(c["holds"] in (True, False) and c["numbers"] for c in result["claims"])


def _no_device_checks(monkeypatch):
  """In-process runs see the 8 simulated devices (conftest), on which the micro preset's
  batch of 4 would not validate; the subprocess runs above validated it on one device."""
  from underrep_jax import validation
  monkeypatch.setattr(validation, "validate", lambda config, num_devices=None: None)


def test_a_rerun_skips_finished_stages(micro, monkeypatch):
  _no_device_checks(monkeypatch)
  ran = []
  outcome = runner.run(_load(MINIATURE, "micro"), micro,
                       run_stage=lambda config, workdir: ran.append(workdir))
  assert ran == [] and set(outcome.values()) == {"skipped"} and len(outcome) == 9


def test_an_interrupted_stage_resumes(micro):
  # Interrupted: the workdir exists (checkpoints and all) without a done-file.
  done = micro / "control_s0" / runner.DONE_FILE
  done.unlink()
  eval_done = (micro / "eval_control_s0" / runner.DONE_FILE).stat().st_mtime_ns
  steps_before = (micro / "control_s0" / "metrics.jsonl").read_text()
  assert "control_s0 [instruct] started" in runner.listing(_load(MINIATURE, "micro"), micro)
  result = _run(micro)
  assert "ran 1 stage(s), skipped 8 finished" in result.stdout, result.stdout
  assert done.is_file()
  # It resumed from its final checkpoint: no optimizer step was taken again.
  assert (micro / "control_s0" / "metrics.jsonl").read_text() == steps_before
  assert (micro / "eval_control_s0" / runner.DONE_FILE).stat().st_mtime_ns == eval_done


def test_listing_shows_status_dependencies_and_commands(micro):
  out = _run(micro, "--config.list_only=True").stdout
  assert "experiment miniature" in out and "status: 9 done" in out
  assert "align_s0 [instructalign] done; depends on: base_s0" in out
  assert ("compare [experiment_report] done; depends on: eval_base_s0, eval_align_s0, "
          "eval_align_replay_s0, eval_control_s0") in out
  assert (f"python -m underrep_jax.main --config=configs/experiments/miniature.py:micro "
          f"--workdir={micro} --config.only=align_s0") in out
  text = runner.listing(_load(MINIATURE, "micro"), micro,
                        ["--config.stages.base_s0.config.train.steps=9"])
  assert "--config.stages.base_s0.config.train.steps=9 --config.only=base_s0" in text


def test_a_changed_finished_stage_is_refused_unless_forced(micro):
  config = _load(MINIATURE, "micro")
  config.only = "compare"
  config.stages.compare.config.title = "Other"
  with pytest.raises(errors.ConfigError) as e:
    runner.run(config, micro)
  assert str(e.value) == ("stage 'compare' finished with another config (changed: title); "
                          "--config.force=True reruns it (its workdir is moved aside)")
  config.force = True
  assert runner.run(config, micro) == {"compare": "ran"}
  assert (micro / "report.md").read_text().startswith("# Other")
  assert list(micro.glob("compare.replaced-*"))
  config.stages.compare.config.title = _load(MINIATURE, "micro").stages.compare.config.title
  runner.run(config, micro)  # back to the preset's


def test_only_with_an_unfinished_dependency_refuses_in_one_line(tmp_path):
  result = _run(tmp_path / "fresh", "--config.only=align_s0", check=False)
  assert result.returncode == 2
  assert _error_lines(result) == [
      "underrep_jax.main: configuration error: stage 'align_s0' needs stage 'base_s0', "
      "which is not finished (pending); run --config.only=base_s0 first"]
  assert not (tmp_path / "fresh" / "align_s0").exists()


def test_stage_wiring_and_dependency_order(tmp_path):
  found = runner.stages(_load(MINIATURE, "micro"), tmp_path)
  names = [s.name for s in found]
  assert names == MICRO_STAGES
  by_name = {s.name: s for s in found}
  assert by_name["align_s0"].config.model.path == str(tmp_path / "base_s0")
  assert by_name["align_s0"].raw.model.path == "{stage:base_s0}"
  assert by_name["eval_align_s0"].depends_on == ["align_s0"]
  assert by_name["compare"].config.report_dir == str(tmp_path)
  # A hash covers the dependencies: a change upstream changes every stage below it.
  config = _load(MINIATURE, "micro")
  config.stages.base_s0.config.train.steps = 5
  changed = {s.name: s.hash for s in runner.stages(config, tmp_path)}
  assert all(changed[n] != by_name[n].hash for n in MICRO_STAGES)


def test_a_dependency_cycle_and_an_unknown_dependency_are_config_errors(tmp_path):
  job = ml_collections.ConfigDict({"job": "evaluate", "model": {"path": "{stage:b}"}})
  other = ml_collections.ConfigDict({"job": "evaluate", "model": {"path": "{stage:a}"}})
  config = exp_configs.experiment("x", "x.py", [("a", exp_configs.stage(job)),
                                                ("b", exp_configs.stage(other))])
  with pytest.raises(errors.ConfigError, match="cycle among a, b"):
    runner.stages(config, tmp_path)
  config.stages.b.config.model.path = "{stage:nope}"
  with pytest.raises(errors.ConfigError, match="depends on 'nope'"):
    runner.stages(config, tmp_path)


def test_paper_grid_lists_and_every_stage_validates(tmp_path):
  config = _load(PAPER)
  found = runner.stages(config, tmp_path)
  trained = [s for s in found if s.job == "instructalign"]
  assert len(trained) == 20 and len(found) == 2 + 20 * 3 + 1
  assert {(s.config.data.objective_set, s.config.data.replay_examples) for s in trained} == {
      (o, r) for o in ("pair", "pair_xss", "random", "random_xss", "bilingual_xss")
      for r in (0, 1000, 10_000, 100_000)}
  for s in trained:
    assert s.config.model.path == "bigscience/bloomz-560m"
    assert s.config.train.batch_size == 32 and s.config.data.max_length == 128
    assert bool(s.config.data.replay) == bool(s.config.data.replay_examples)
  evals = [s for s in found if s.job == "evaluate"]
  assert {s.config.tasks for s in evals} == {"nusax_senti", "nusatranslation_senti"}
  runner.validate_stages(config, tmp_path)  # the launcher's checks, on every stage
  text = runner.listing(config, tmp_path)
  assert "status: 63 pending" in text
  assert "--config.only=bilingual_xss_r100k" in text


def test_plan_takes_one_stage_of_an_experiment(tmp_path):
  config = _load(PAPER)
  config.only = "pair_xss_r100k"
  stage = runner.single_stage_config(config, tmp_path)
  assert stage.job == "instructalign" and stage.data.objective_set == "pair_xss"
  from underrep_jax import plan
  config.only = "compare"
  with pytest.raises(errors.ConfigError, match="config.job='experiment_report': plan builds"):
    plan.plan(config, plan.TARGETS["v5e-8"], 0)
  config.only = ""
  with pytest.raises(errors.ConfigError, match="name one stage"):
    runner.single_stage_config(config, tmp_path)


def test_report_spread_over_seeds_and_the_published_table(tmp_path):
  def metrics(path, value):
    path.mkdir(parents=True)
    entry = lambda v: {"weighted_f1": v, "majority": {"weighted_f1": 0.2},  # noqa: E731
                       "random": {"weighted_f1": 0.3}}
    path.joinpath("metrics.json").write_text(json.dumps(
        {"nusax_senti": {"eng": entry(value), "sun": entry(value + 0.1),
                         "mad": entry(value - 0.1)}}))
    return path
  runs = [("base", "0", metrics(tmp_path / "b0", 0.4)),
          ("base", "1", metrics(tmp_path / "b1", 0.5)),
          ("bilingual_xss_r100k", "0", metrics(tmp_path / "x0", 0.6))]
  result = report.write(runs, [tmp_path / "out"], "t", published="instructalign_bloomz560m")
  seen = result["tasks"]["nusax_senti"]["base"]["seen"]
  assert seen["n"] == 2 and seen["values"] == pytest.approx([0.5, 0.6])
  assert seen["std"] == pytest.approx(0.0707, abs=1e-3)
  rows = {r["published_label"]: r for r in result["published"] if r["task"] == "nusax_senti"}
  assert rows["BLOOMZ-560M"]["ours"] == pytest.approx(0.45)
  assert rows["BLOOMZ-560M"]["published"] == 0.375
  assert rows["Majority baseline"]["ours"] == pytest.approx(0.2)
  assert rows["560M + TLM, r=0 (forgetting)"]["ours"] is None
  text = (tmp_path / "out" / "report.md").read_text()
  assert "| nusax_senti | 560M + XSS, r=100k | bilingual_xss_r100k | 46.8 | 60.0 |" in text


def test_a_stage_stopped_by_sigterm_is_not_marked_done(tmp_path, monkeypatch):
  """A training job stopped by SIGTERM saves and returns normally (its summary says
  `preempted`): the runner stops there, with no done-file, so a re-run resumes it."""
  _no_device_checks(monkeypatch)
  config = _load(MINIATURE, "micro")
  config.only = "base_s0"

  def stopped_early(stage_config, workdir):
    workdir.mkdir(parents=True)
    (workdir / "instruct_summary.json").write_text(json.dumps({"preempted": True}))

  assert runner.run(config, tmp_path, run_stage=stopped_early) == {"base_s0": "interrupted"}
  assert not (tmp_path / "base_s0" / runner.DONE_FILE).exists()
  assert runner.status(runner.stages(config, tmp_path)[0]) == runner.STARTED


@test_plan.needs_libtpu
def test_plan_compiles_an_experiment_stage_from_the_command_line():
  """`plan --config=<experiment> --config.only=<stage>` plans that stage's job (here on
  the tiny BLOOM fixture's config.json in place of BLOOMZ-560M, to compile in seconds)."""
  stage = "--config.stages.pair_xss_r100k.config"
  result = test_plan.run_plan(f"--config={PAPER}", "--config.only=pair_xss_r100k",
                              "--target=v5e-8", "--search_seconds=0",
                              f"{stage}.model.path=tests/published/bloomz-560m", timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "batch 32 x 128 tokens" in result.stdout and "remat True" in result.stdout
  assert result.stdout.strip().splitlines()[-1] == "verdict: fits on v5e-8"
