"""One run per workdir (a lock file), and atomic writes for files a restart trusts.

The lock, WORKDIR/.lock, holds {"host", "pid", "started"}. It is created with a hard link
from a fully written temporary file, so another process sees either no lock or a complete
one. A second run gets a `ResourceError` naming the workdir, host and PID; a lock left by
a dead process on this host is taken over with a warning (a lock from another host cannot
be checked from here: the message says how to remove it). Taking the lock again in the
process that holds it is allowed (the launcher and the training loop both take it).

The atomic-write helpers live in `underrep_jax.files` (plain Python, for the data layer
too) and are re-exported here.
"""

import contextlib
import datetime
import json
import os
import pathlib
import socket
import tempfile

from absl import logging

from underrep_jax.errors import ResourceError
from underrep_jax.errors import as_user_error
from underrep_jax.files import atomic_path  # noqa: F401  (re-exported)
from underrep_jax.files import atomic_write_bytes  # noqa: F401
from underrep_jax.files import atomic_write_text  # noqa: F401

LOCK_NAME = ".lock"
_held: dict[str, int] = {}  # lock path -> how many times this process holds it


def _user_os_error(error: OSError):
  """An OS error about a path as the one-line ResourceError (others unchanged)."""
  return as_user_error(error) or error


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # exists, owned by someone else
    return True
  return True


def _read_lock(path: pathlib.Path) -> dict | None:
  try:
    return json.loads(path.read_text())
  except FileNotFoundError:
    return None
  except (OSError, ValueError):
    return {}


def _try_create(path: pathlib.Path, record: dict) -> bool:
  """Creates the lock with its full content in one step; False if it already exists."""
  fd, tmp = tempfile.mkstemp(prefix=".lock.", suffix=".tmp", dir=path.parent)
  try:
    with os.fdopen(fd, "w") as f:
      json.dump(record, f)
      f.flush()
      os.fsync(f.fileno())
    os.link(tmp, path)
    return True
  except FileExistsError:
    return False
  finally:
    os.unlink(tmp)


def acquire(workdir: str | os.PathLike) -> pathlib.Path:
  """Takes WORKDIR/.lock for this process (see the module docstring) and returns its path."""
  workdir = pathlib.Path(workdir)
  try:
    workdir.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise _user_os_error(e) from e
  path = workdir / LOCK_NAME
  key = str(path.resolve())
  if _held.get(key):
    _held[key] += 1
    return path
  host = socket.gethostname()
  record = {"host": host, "pid": os.getpid(),
            "started": datetime.datetime.now().isoformat(timespec="seconds")}
  for _ in range(3):
    try:
      if _try_create(path, record):
        _held[key] = 1
        return path
    except OSError as e:
      raise _user_os_error(e) from e
    other = _read_lock(path)
    if other is None:  # released meanwhile: try again
      continue
    pid = other.get("pid")
    if other.get("host") == host and isinstance(pid, int) and pid != os.getpid() \
        and _pid_alive(pid):
      raise ResourceError(f"workdir {workdir} is in use by another run (host {host}, PID "
                          f"{pid}, started {other.get('started', '?')}); wait for it to end "
                          f"or use another --workdir")
    if other.get("host") not in (host, None):
      raise ResourceError(f"workdir {workdir} is locked by a run on host {other.get('host')} "
                          f"(PID {pid}, started {other.get('started', '?')}); if that run "
                          f"is gone, delete {path}")
    logging.warning("Taking over the stale lock %s of PID %s on %s (no such process)",
                    path, pid, other.get("host", host))
    path.unlink(missing_ok=True)
  raise ResourceError(f"could not take the lock {path}: other runs keep taking it")


def release(workdir: str | os.PathLike) -> None:
  """Gives up this process's hold on WORKDIR/.lock (removed at the last release)."""
  path = pathlib.Path(workdir) / LOCK_NAME
  key = str(path.resolve())
  if not _held.get(key):
    return
  _held[key] -= 1
  if _held[key]:
    return
  del _held[key]
  record = _read_lock(path)
  if record and record.get("pid") == os.getpid() and record.get("host") == socket.gethostname():
    path.unlink(missing_ok=True)


@contextlib.contextmanager
def locked(workdir: str | os.PathLike, enabled: bool = True):
  """Holds WORKDIR/.lock for the block (`enabled=False`: other processes of a multi-host
  job, where process 0 holds it for everyone)."""
  if not enabled:
    yield
    return
  acquire(workdir)
  try:
    yield
  finally:
    release(workdir)
