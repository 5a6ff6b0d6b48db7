"""Finding registered SeqIO tasks and mixtures by name, and importing a user's modules.

`config.task_modules` names the modules that register a user's tasks (T5X's
`MIXTURE_OR_TASK_MODULE`); every job and `show` import them through `import_modules`
before they look a name up, so a misspelt name gets the same one-line error everywhere.
"""

import difflib
import importlib

import seqio

from underrep_jax import errors


def split_names(text: str) -> list[str]:
  return [s.strip() for s in (text or "").split(",") if s.strip()]


def import_modules(spec: str, field: str = "config.task_modules") -> None:
  """Imports each comma-separated module of `spec` (they register tasks and mixtures)."""
  for name in split_names(spec):
    try:
      importlib.import_module(name)
    except Exception as e:  # pylint: disable=broad-except
      detail = " ".join(str(e).split()) or type(e).__name__
      raise errors.ConfigError(
          f"{field}: cannot import {name!r} ({type(e).__name__}: {detail}); "
          "it must be importable from PYTHONPATH or the current directory") from e


def known_names() -> list[str]:
  return sorted(set(seqio.MixtureRegistry.names()) | set(seqio.TaskRegistry.names()))


def require(name: str, field: str) -> str:
  """`name` if SeqIO knows it as a task or mixture; otherwise a ConfigError listing the
  closest registered names."""
  if not name:
    raise errors.ConfigError(f"{field} is empty: name a registered SeqIO task or mixture "
                             "(see `python -m underrep_jax.show --list`)")
  known = known_names()
  if name not in known:
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    hint = (f"; close registered names: {', '.join(close)}" if close
            else "; `python -m underrep_jax.show --list` lists the registered names")
    raise errors.ConfigError(f"{field}={name!r}: no registered SeqIO task or mixture of that "
                             f"name (import the module that registers it with "
                             f"--config.task_modules){hint}")
  return name


def tasks_of(names: str, field: str) -> list[seqio.Task]:
  """The tasks that comma-separated task or mixture names stand for, mixtures expanded
  (sub-mixtures too; a mixture's tasks by name), names in the order given, each task
  once."""
  out, seen = [], set()
  for name in split_names(names):
    require(name, field)
    provider = seqio.get_mixture_or_task(name)
    for task in (provider.tasks if isinstance(provider, seqio.Mixture) else [provider]):
      if task.name not in seen:
        seen.add(task.name)
        out.append(task)
  return out
