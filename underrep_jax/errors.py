"""The one family of errors a user can fix: bad configuration, data, checkpoints, models
or resources (disk, locks).

Library code raises a `UserError` subclass with the facts (file, field, value, what was
expected) and never prints or exits; the launchers (`main`, `show`) turn it into one line
on stderr, `<kind> error: <message>`, and the subclass's exit code. Anything else is a bug
and keeps its traceback.
"""

import errno
import os

EXIT_CONFIG = 2
EXIT_FAILURE = 1


class UserError(Exception):
  """Something the user can fix; the message alone says what and where."""
  kind = "user"
  exit_code = EXIT_FAILURE


class ConfigError(UserError, ValueError):
  """A config value that cannot work (checked before any work starts)."""
  kind = "configuration"
  exit_code = EXIT_CONFIG


class DataError(UserError, ValueError):
  """Bad, missing or unreachable input data; the message names the file, row and field."""
  kind = "data"


class CheckpointError(UserError):
  """A training checkpoint (WORKDIR/checkpoints) that cannot be used."""
  kind = "checkpoint"


class ModelError(UserError):
  """A model directory or file (config.json, weights, tokenizer) that cannot be used."""
  kind = "model"


class ResourceError(UserError):
  """The machine refused: a full disk, a read-only or busy workdir."""
  kind = "resource"


class TrainingError(UserError):
  """Training cannot go on (a NaN/Inf loss); the message says what was kept."""
  kind = "training"


# OS errors a user causes with a path (a read-only or file-shaped workdir, a full disk,
# a missing file): one line naming the path is all they need.
_OS_USER_ERRORS = (PermissionError, NotADirectoryError, FileExistsError, IsADirectoryError,
                   FileNotFoundError)
_OS_USER_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                   errno.ENOTDIR, errno.EEXIST, errno.EISDIR, errno.ENOENT)


def os_error_message(error: OSError) -> str:
  """"<path>: <what the OS said>" (or the error's own text when it names no path)."""
  if error.strerror and error.filename is not None:
    where = str(error.filename)
    if error.filename2 is not None:
      where += f" -> {error.filename2}"
    what = error.strerror
    if isinstance(error, FileExistsError) and os.path.isfile(error.filename):
      what = "is a file, not a directory"
    return f"{where}: {what}"
  return str(error) or type(error).__name__


def as_user_error(error: BaseException) -> UserError | None:
  """The user error `error` is or stands for (an OS error about a path), else None."""
  if isinstance(error, UserError):
    return error
  if isinstance(error, OSError) and (isinstance(error, _OS_USER_ERRORS)
                                     or error.errno in _OS_USER_ERRNOS):
    wrapped = ResourceError(os_error_message(error))
    wrapped.__cause__ = error
    return wrapped
  return None


def one_line(error: UserError) -> str:
  """`<kind> error: <message>` on one line (continuation lines joined with "; ")."""
  text = "; ".join(l.strip() for l in str(error).splitlines() if l.strip())
  return f"{error.kind} error: {text or type(error).__name__}"
