"""What experiment config files (configs/experiments/*.py) build their stages with.

An experiment config is a ConfigDict:

  job          "experiment"
  name         the experiment's name (report titles)
  command      the --config value that loads it ("configs/experiments/miniature.py:micro"),
               for the per-stage command lines the listing prints
  stages       {stage name: {config: <a job's ConfigDict>, depends_on: "a,b",
                             description: "..."}}
  stage_order  the stages' declared order (ConfigDict sorts its keys); the runner keeps
               it wherever the dependencies allow
  only         comma-separated stages to run alone (their dependencies must be done)
  list_only    print the stages, dependencies, status and per-stage commands; run nothing
  dry_run      the same as list_only
  force        rerun finished stages whose config changed (their old workdir is moved
               aside to <stage>.replaced-<time>/), instead of refusing

In any string field of a stage's config, `{stage:NAME}` becomes the workdir of stage NAME
(and makes NAME a dependency) and `{experiment}` the experiment's workdir. So an
alignment stage reads its base model with `model.path="{stage:base}"`.
"""

import importlib.util
import pathlib

import ml_collections

EXPERIMENT_JOB = "experiment"
REPORT_JOB = "experiment_report"
EXPERIMENT_TOKEN = "{experiment}"


def ref(stage: str) -> str:
  """The token a stage config uses for the workdir of `stage`."""
  return "{stage:" + stage + "}"


def load_job_config(path: str | pathlib.Path, preset: str | None = None,
                    **overrides) -> ml_collections.ConfigDict:
  """`get_config(preset)` of a job's config file (configs/<job>.py), with dotted-field
  `overrides` ({"train.steps": 10}) applied."""
  path = pathlib.Path(path)
  spec = importlib.util.spec_from_file_location(f"_experiment_stage_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(preset) if preset else module.get_config()
  return with_fields(config, **overrides)


def with_fields(config: ml_collections.ConfigDict, **fields) -> ml_collections.ConfigDict:
  """`config` with dotted fields set ("train.steps": 10); each must exist."""
  for dotted, value in fields.items():
    *parents, leaf = dotted.split(".")
    section = config
    for part in parents:
      section = section[part]
    if leaf not in section:
      raise KeyError(f"{dotted}: the {config.get('job')} config has no such field")
    section[leaf] = value
  return config


def stage(config: ml_collections.ConfigDict, depends_on=(), description: str = ""
          ) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      config=config, depends_on=",".join(depends_on), description=description))


def report_config(runs: list[tuple[str, int, str]], title: str, baseline: str = "",
                  control: str = "", claims: str = "", published: str = "",
                  tasks: str = "") -> ml_collections.ConfigDict:
  """The compare stage: `runs` are (variant, seed, evaluate stage name); its report goes
  to its own workdir and to the experiment's (report.md, report.json, report.png)."""
  config = ml_collections.ConfigDict()
  config.job = REPORT_JOB
  config.title = title
  config.runs = ",".join(f"{variant}@{seed}={ref(name)}" for variant, seed, name in runs)
  config.baseline = baseline    # the variant the claims compare against (the base model)
  config.control = control      # the variant that continued the base's own training
  config.claims = claims        # "" | "miniature": which claims the report checks
  config.published = published  # "" | a key of experiments.published.TABLES
  config.tasks = tasks          # report order of tasks ("" = as found)
  config.report_dir = EXPERIMENT_TOKEN
  return config


def experiment(name: str, command: str,
               stages: list[tuple[str, ml_collections.ConfigDict]]
               ) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.job = EXPERIMENT_JOB
  config.name = name
  config.command = command
  config.data_dir = ""
  config.stages = ml_collections.ConfigDict({n: s for n, s in stages})
  config.stage_order = ",".join(n for n, _ in stages)
  config.only = ""
  config.list_only = False
  config.dry_run = False
  config.force = False
  return config
