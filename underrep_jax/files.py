"""Atomic writes for every file a restart trusts (vocabularies, exports, summaries).

Each writes to a temporary name in the same directory, fsyncs and renames, so a kill or a
full disk leaves the old file or the new one, never half of one. Plain Python: usable from
the data layer as well as from training.
"""

import contextlib
import os
import pathlib
import tempfile


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ""):
  """Yields a temporary path beside `path`; renames it onto `path` when the block ends.

  For writers that want a file name (SentencePiece, safetensors); `suffix` ends the
  temporary name for writers that insist on an extension. On an error the temporary file
  is removed and `path` is left as it was.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
  os.close(fd)
  tmp = pathlib.Path(tmp)
  try:
    yield tmp
    _fsync_file(tmp)
    os.replace(tmp, path)
    _fsync_dir(path.parent)
  finally:
    tmp.unlink(missing_ok=True)


def _fsync_file(path: pathlib.Path) -> None:
  with open(path, "rb") as f:
    os.fsync(f.fileno())


def _fsync_dir(directory: pathlib.Path) -> None:
  try:
    fd = os.open(directory, os.O_RDONLY)
  except OSError:  # some filesystems cannot open directories: the rename still happened
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> pathlib.Path:
  """Writes `data` to `path` through a temporary file + fsync + rename."""
  with atomic_path(path) as tmp:
    tmp.write_bytes(data)
  return pathlib.Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> pathlib.Path:
  return atomic_write_bytes(path, text.encode("utf-8"))
