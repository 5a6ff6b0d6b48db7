"""Job: an experiment, a declared set of stages run in order (configs/experiments/*.py).

    python -m underrep_jax.main --config=configs/experiments/miniature.py:micro --workdir=runs/mini
    ... --config.list_only=True       # stages, dependencies, status, per-stage commands
    ... --config.only=base_s0         # one stage alone (its dependencies must be done)

Each stage is a normal job in WORKDIR/<stage>/ (`experiments.runner`); finished stages
are skipped on a re-run, an interrupted one resumes.
"""

import sys

from underrep_jax.experiments import runner

_OWN = ("--config.only", "--config.list_only", "--config.dry_run", "--config.force")


def command_overrides(argv: list[str]) -> list[str]:
  """The --config.<field> overrides of this command line, for the per-stage commands
  (without the runner's own selection flags)."""
  return [a for a in argv if a.startswith("--config.") and not a.startswith(_OWN)]


def run(config, workdir: str) -> None:
  if config.list_only or config.dry_run:
    runner.validate_stages(config, workdir)
    print(runner.listing(config, workdir, command_overrides(sys.argv[1:])), flush=True)
    return
  outcome = runner.run(config, workdir)
  stopped = [n for n, o in outcome.items() if o == "interrupted"]
  if stopped:
    print(f"experiment {config.name}: stage {stopped[0]} stopped early (SIGTERM); re-run "
          "the same command to resume it", flush=True)
    return
  ran = [n for n, o in outcome.items() if o == "ran"]
  skipped = [n for n, o in outcome.items() if o == "skipped"]
  print(f"experiment {config.name}: ran {len(ran)} stage(s)"
        + (f", skipped {len(skipped)} finished" if skipped else "") + f"; outputs in {workdir}",
        flush=True)
