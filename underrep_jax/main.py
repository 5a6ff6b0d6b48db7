"""Command-line entry point: loads an ml_collections config and runs its job.

    python -m underrep_jax.main --config=configs/instructalign.py:tiny --workdir=runs/demo \
        --config.train.steps=10

`config.job` names a module in `underrep_jax/jobs/`; each job module has a plain
`run(config, workdir)`. Bad command lines (missing config file, unknown override key,
unknown job) end with one line on stderr and exit code 2, never a traceback.
"""

import importlib
import pkgutil
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from underrep_jax import jobs

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, optionally with a preset: configs/x.py[:preset].",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and outputs.")

EXIT_USAGE = 2


def usage_error(message: str) -> None:
  """Prints one line and exits with the usage error code."""
  print(f"underrep_jax.main: error: {message}", file=sys.stderr)
  sys.exit(EXIT_USAGE)


def available_jobs() -> list[str]:
  return sorted(m.name for m in pkgutil.iter_modules(jobs.__path__) if not m.name.startswith("_"))


def load_job(name: str):
  known = available_jobs()
  if name not in known:
    usage_error(f"unknown job {name!r} in config.job; known jobs: {', '.join(known)}")
  return importlib.import_module(f"underrep_jax.jobs.{name}")


def parse_flags(argv: list[str]) -> list[str]:
  """Parses flags; turns every flag error into a one-line usage error."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    usage_error(_first_line(str(e)))
  except (FileNotFoundError, OSError) as e:  # config_flags raises these for a bad path
    usage_error(_first_line(str(e)))
  except (KeyError, AttributeError, ValueError, TypeError) as e:  # bad override values/keys
    usage_error(_first_line(str(e)))
  return []


def _first_line(text: str) -> str:
  text = text.strip().strip('"').strip("'")
  return text.splitlines()[0] if text else "invalid command line"


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    usage_error(f"unexpected arguments: {' '.join(argv[1:])}")
  config = _CONFIG.value
  if config is None:
    usage_error("--config is required, e.g. --config=configs/instructalign.py:tiny")
  if "job" not in config:
    usage_error("the config has no 'job' field naming a module in underrep_jax/jobs/")
  workdir = _WORKDIR.value
  if not workdir:
    usage_error("--workdir is required")
  job = load_job(config.job)
  logging.info("Running job %s in %s", config.job, workdir)
  job.run(config, workdir)


def run() -> None:
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
