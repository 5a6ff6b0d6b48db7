"""The one exception type for bad or missing input data.

A `DataError` says which file, row and field is wrong and what was expected, so that a
user can fix the data (or point at the right copy) without reading the code. It is a
`ValueError`, so callers that already catch bad values keep working.
"""


class DataError(ValueError):
  """Bad, missing or unreachable input data; the message names the file, row and field."""
