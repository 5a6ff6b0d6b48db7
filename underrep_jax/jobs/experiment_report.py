"""Job: the compare stage of an experiment (`experiments.report`).

    python -m underrep_jax.main --config=configs/experiment_report.py \
        --config.runs="base@0=runs/eval_base,align@0=runs/eval_align" --workdir=runs/cmp

Reads each run's metrics.json; writes report.md, report.json and report.png to the
workdir and to `report_dir` (the experiment's workdir when run as a stage).
"""

import pathlib

from underrep_jax import errors
from underrep_jax.experiments import report


def split_list(text: str) -> list[str]:
  return [s.strip() for s in (text or "").split(",") if s.strip()]


def run(config, workdir: str) -> None:
  try:
    runs = report.parse_runs(config.runs)
  except ValueError as e:
    raise errors.ConfigError(str(e)) from None
  outs = [pathlib.Path(workdir)]
  if config.get("report_dir") and pathlib.Path(config.report_dir) != outs[0]:
    outs.append(pathlib.Path(config.report_dir))
  report.write(runs, outs, config.title, baseline=config.baseline, control=config.control,
               claims=config.claims, published=config.published,
               task_order=split_list(config.tasks))
