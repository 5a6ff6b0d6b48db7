"""Command-line entry point: loads an ml_collections config and runs its job.

    python -m underrep_jax.main --config=configs/instructalign.py:tiny --workdir=runs/demo \
        --config.train.steps=10

`config.job` names a module in `underrep_jax/jobs/`; each job module has a plain
`run(config, workdir)`. Bad command lines (missing config file, unknown override key,
unknown job) end with one line on stderr and exit code 2, never a traceback.
"""

import importlib
import logging as pylogging
import os
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
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory for checkpoints, metrics and outputs (default: "
    "runs/<config name>_<preset> under the current directory).")

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
    cause = e.__cause__ or e.__context__
    if isinstance(cause, (KeyError, AttributeError)):
      _unknown_key(cause, argv)
    usage_error(_summary(str(e)))
  except (KeyError, AttributeError) as e:  # ConfigDict raises these for unknown fields
    _unknown_key(e, argv)
  except (OSError, ValueError, TypeError) as e:
    usage_error(_summary(str(e)))
  return []


def _unknown_key(error: Exception, argv: list[str]) -> None:
  """ml_collections refuses an override of a field the config does not have."""
  key = str(error.args[0]).strip("'\"") if error.args else ""
  given = [a.split("=", 1)[0].lstrip("-") for a in argv if a.startswith("--config.")]
  named = [g for g in given if g.split(".")[-1] == key] or [key]
  usage_error(f"unknown config key {named[0]!r}: the config has no such field")


def _summary(text: str) -> str:
  """One line from an error text; for a wrapped traceback, its head and final line."""
  lines = [l.strip() for l in text.strip().splitlines() if l.strip()]
  if not lines:
    return "invalid command line"
  if len(lines) > 1 and any(l.startswith("Traceback") for l in lines):
    return f"{lines[0].rstrip(':')}: {lines[-1]}"
  return lines[0]


def default_workdir(config_flag: str) -> str:
  """runs/<config file stem>_<preset> ("runs/univar_tiny") for a --config value."""
  value = config_flag.split("=", 1)[-1]
  path, _, preset = value.partition(":")
  name = os.path.splitext(os.path.basename(path))[0] or "job"
  return os.path.join("runs", f"{name}_{preset}" if preset else name)


class _QuietLibraries(pylogging.Filter):
  """Keeps the console readable: libraries' INFO chatter (Orbax writes a dozen lines per
  checkpoint) is dropped; their warnings and errors, and all of our own logs, stay."""

  NOISY = ("/orbax/", "/seqio/", "/tensorstore/", "/etils/", "/jax/_src/")

  def filter(self, record: pylogging.LogRecord) -> bool:
    if record.levelno >= pylogging.WARNING:
      return not (record.levelno == pylogging.WARNING and "uncached FunctionDataset"
                  in record.getMessage())
    return not any(part in record.pathname for part in self.NOISY)


def main(argv: list[str]) -> None:
  logging.get_absl_handler().addFilter(_QuietLibraries())
  if len(argv) > 1:
    usage_error(f"unexpected arguments: {' '.join(argv[1:])}")
  config = _CONFIG.value
  if config is None:
    usage_error("--config is required, e.g. --config=configs/instructalign.py:tiny")
  try:
    has_job = "job" in config  # config_flags reports a bad file or preset only on use
  except Exception as e:  # pylint: disable=broad-except
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    usage_error(f"cannot load {flags.FLAGS['config'].serialize()}: "
                f"{lines[-1] if lines else type(e).__name__}")
  if not has_job:
    usage_error("the config has no 'job' field naming a module in underrep_jax/jobs/")
  workdir = _WORKDIR.value or default_workdir(flags.FLAGS["config"].serialize())
  if "://" not in workdir:  # local: absolute, so jobs and Orbax see one unambiguous path
    workdir = os.path.abspath(workdir)
  job = load_job(config.job)
  if os.environ.get("UNDERREP_DISTRIBUTED") or os.environ.get("UNDERREP_NUM_PROCESSES"):
    from underrep_jax import parallel  # multi-host: join the other processes first
    parallel.initialize_distributed()
  if config.get("data_dir"):
    from underrep_jax.data import sources  # plain Python: no TensorFlow at start-up
    sources.set_data_dir(config.data_dir)
  logging.info("Running job %s in %s", config.job, workdir)
  if not _WORKDIR.value:
    print(f"underrep_jax.main: no --workdir given; writing to {workdir}", file=sys.stderr)
  from underrep_jax.data.errors import DataError
  try:
    job.run(config, workdir)
  except DataError as e:  # bad or missing input data: the message says what and where
    print(f"underrep_jax.main: data error: {e}", file=sys.stderr)
    sys.exit(1)


def run() -> None:
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
