"""Command-line entry point: loads an ml_collections config and runs its job.

    python -m underrep_jax.main --config=configs/instructalign.py:tiny --workdir=runs/demo \
        --config.train.steps=10

`config.job` names a module in `underrep_jax/jobs/`; each job module has a plain
`run(config, workdir)`. Bad command lines (missing config file, unknown override key,
unknown job) end with one line on stderr and exit code 2, never a traceback.

The config is validated (`validation.validate`) and the workdir locked
(`train.workdir.locked`) before the job starts. Any `errors.UserError` the job raises
(configuration: exit 2; data, checkpoint, model, resource, training: exit 1), and the OS
errors a user causes with a path (a read-only workdir, a full disk), end as one line
`underrep_jax.main: <kind> error: <message>`; `--debug` shows the full traceback instead.
"""

import glob
import importlib
import logging as pylogging
import os
import pkgutil
import re
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from underrep_jax import errors
from underrep_jax import jobs

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, optionally with a preset: configs/x.py[:preset].",
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory for checkpoints, metrics and outputs (default: "
    "runs/<config name>_<preset> under the current directory).")
if "debug" not in flags.FLAGS:  # show.py defines it too
  flags.DEFINE_bool("debug", False, "Show the full traceback of configuration, data, "
                    "checkpoint, model and resource errors (normally one line).")

EXIT_USAGE = 2


def usage_error(message: str) -> None:
  """Prints one line and exits with the usage error code."""
  print(f"underrep_jax.main: error: {message}", file=sys.stderr)
  sys.exit(EXIT_USAGE)


def available_jobs() -> list[str]:
  return sorted(m.name for m in pkgutil.iter_modules(jobs.__path__) if not m.name.startswith("_"))


def check_job(name: str) -> None:
  known = available_jobs()
  if name not in known:
    usage_error(f"unknown job {name!r} in config.job; known jobs: {', '.join(known)}")


def load_job(name: str):
  check_job(name)
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
  """ml_collections refuses an override of a field the config does not have.

  Its message is a repr'd key plus "Did you mean ..." (sometimes wrapped in a second
  KeyError); the key and the suggestion are picked out of it.
  """
  while error.args and isinstance(error.args[0], BaseException):
    error = error.args[0]
  text = str(error.args[0]) if error.args else ""
  found = re.search(r"[A-Za-z_][A-Za-z0-9_]*", text)
  key = found.group(0) if found else ""
  suggestion = re.search(r'Did you mean "([^"]+)"', text)
  given = [a.split("=", 1)[0].lstrip("-") for a in argv if a.startswith("--config.")]
  named = [g for g in given if g.split(".")[-1] == key] or [key]
  hint = ""
  if suggestion:
    parent = named[0].rsplit(".", 1)[0] + "." if "." in named[0] else ""
    hint = f"; did you mean {parent}{suggestion.group(1)}?"
  usage_error(f"unknown config key {named[0]!r}: the config has no such field{hint}")


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
  checkpoint) is dropped; their warnings and errors, and all of our own logs, stay.

  With `drop_library_errors` Orbax's ERROR records go too: a failed save logs five
  tracebacks from its threads, and the loop reports the same failure as one line.
  """

  NOISY = ("/orbax/", "/seqio/", "/tensorstore/", "/etils/", "/jax/_src/")

  def __init__(self, drop_library_errors: bool = False):
    super().__init__()
    self.drop_library_errors = drop_library_errors

  def filter(self, record: pylogging.LogRecord) -> bool:
    if self.drop_library_errors and "/orbax/" in record.pathname:
      return record.levelno < pylogging.ERROR and self._keep(record)
    return self._keep(record)

  def _keep(self, record: pylogging.LogRecord) -> bool:
    if record.levelno >= pylogging.WARNING:
      return not (record.levelno == pylogging.WARNING and "uncached FunctionDataset"
                  in record.getMessage())
    return not any(part in record.pathname for part in self.NOISY)


def _default_platforms() -> None:
  """CPU where the host has no accelerator device files: an installed libtpu (the `tpu`
  extra, for `plan`) is then never probed, which prints a screen of TPU warnings. A
  JAX_PLATFORMS the user set is kept."""
  accelerators = [*glob.glob("/dev/accel*"), *glob.glob("/dev/vfio/[0-9]*"),
                  *glob.glob("/dev/nvidia[0-9]*")]
  if not accelerators:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


def main(argv: list[str]) -> None:
  _default_platforms()  # before anything imports jax
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
  check_job(config.job)
  if os.environ.get("UNDERREP_DISTRIBUTED") or os.environ.get("UNDERREP_NUM_PROCESSES"):
    from underrep_jax import parallel  # multi-host: join the other processes first
    parallel.initialize_distributed()
  if config.get("data_dir"):
    from underrep_jax.data import sources  # plain Python: no TensorFlow at start-up
    sources.set_data_dir(config.data_dir)
  data = config.get("data")
  if hasattr(data, "get") and data.get("verify"):
    from underrep_jax.data import sources
    try:
      sources.set_verify(data.verify)
    except errors.ConfigError as e:
      usage_error(str(e))
  logging.info("Running job %s in %s", config.job, workdir)
  if not _WORKDIR.value:
    print(f"underrep_jax.main: no --workdir given; writing to {workdir}", file=sys.stderr)
  run_reporting_errors(_run_job, config, workdir, debug=flags.FLAGS.debug)


def run_reporting_errors(fn, *args, debug: bool = False):
  """`fn(*args)`; a user error (or an OS error about a path) becomes one line on stderr
  and its exit code. With `debug`, or for any other exception, the traceback stays."""
  # Stays installed after a failure: Orbax's writer threads log their own view of it
  # until the interpreter has shut down.
  logging.get_absl_handler().addFilter(_QuietLibraries(drop_library_errors=not debug))
  if not debug:
    sys.unraisablehook = _without_closed_loop_noise(sys.unraisablehook)
  try:
    return fn(*args)
  except Exception as e:  # pylint: disable=broad-except
    user_error = errors.as_user_error(e)
    if user_error is None or debug:
      raise
    print(f"underrep_jax.main: {errors.one_line(user_error)}", file=sys.stderr)
    sys.stderr.flush()
    sys.exit(user_error.exit_code)


def _without_closed_loop_noise(hook):
  """An unraisable-exception hook that drops "Event loop is closed" RuntimeErrors.

  TensorStore completes reads and writes of a failed Orbax save or restore on its own
  threads after Orbax has closed their asyncio loop; each completion prints a traceback
  (hundreds for one damaged checkpoint) about nothing the user can act on.
  """

  def quiet(unraisable):
    value = unraisable.exc_value
    if isinstance(value, RuntimeError) and str(value) == "Event loop is closed":
      return
    hook(unraisable)

  return quiet


def _run_job(config, workdir: str) -> None:
  """Validates the config (before the job's heavy imports), then runs the job holding
  the workdir's lock."""
  from underrep_jax import validation
  validation.validate(config)
  import jax
  job = load_job(config.job)
  from underrep_jax.train import workdir as workdir_lib
  with workdir_lib.locked(workdir, enabled="://" not in workdir and jax.process_index() == 0):
    job.run(config, workdir)


def run() -> None:
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
