"""The exception type for bad or missing input data (kept here for its import path).

A `DataError` says which file, row and field is wrong and what was expected, so that a
user can fix the data (or point at the right copy) without reading the code. It is a
`ValueError`, so callers that already catch bad values keep working, and a
`underrep_jax.errors.UserError`, so the launcher prints it on one line.
"""

from underrep_jax.errors import DataError

__all__ = ["DataError"]
