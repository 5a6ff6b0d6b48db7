"""The compare stage of an experiment, on its own: one report over evaluation workdirs.

    python -m underrep_jax.main --config=configs/experiment_report.py --workdir=runs/cmp \
        --config.runs="base@0=runs/eval_base,align@0=runs/eval_align,align@1=runs/eval_a1"

`runs`: variant@seed=PATH of evaluation workdirs (metrics.json); several seeds of one
variant give mean, std and min-max. `claims=miniature` checks the miniature experiment's
claims (variants base, control, align, align_replay); `published` names a table of
underrep_jax/experiments/published.py to put beside ours.
"""

from underrep_jax.experiments import configs


def get_config():
  config = configs.report_config([], title="Comparison")
  config.report_dir = ""
  return config
