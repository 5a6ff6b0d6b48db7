"""Atomic writes for every file a restart trusts (vocabularies, exports, summaries).

Each writes to a temporary name in the same directory, fsyncs and renames, so a kill or a
full disk leaves the old file or the new one, never half of one. Plain Python: usable from
the data layer as well as from training.
"""

from collections.abc import Iterable
import contextlib
import json
import os
import pathlib
import tempfile
from typing import Any


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


def write_json(path: str | os.PathLike, obj: Any) -> pathlib.Path:
  """Atomically writes `obj` as indented JSON with a trailing newline (diff-friendly)."""
  return atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> pathlib.Path:
  """Atomically writes one JSON object per line; non-ASCII text is kept readable.

  NaN/Inf are refused (`allow_nan=False`): bare NaN is not JSON and breaks other readers.
  """
  text = "".join(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n" for row in rows)
  return atomic_write_text(path, text)


def read_jsonl(path: str | os.PathLike) -> list[Any]:
  """The rows of a JSONL file (blank lines skipped); a bad line is named by its number."""
  rows = []
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{number}: not a JSON line ({e.msg})") from None
  return rows
