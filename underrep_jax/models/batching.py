"""Batches of token rows with little padding and few compiled shapes.

Jitted model calls compile once per input shape, so a batch is padded to a fixed number
of rows and its length rounded up to a bucket (a multiple of a few tens of tokens).
Rows are taken in order of length so each batch pads little; `padded_batches` yields the
input indices of each batch, and callers write results back at those indices
(`out[indices] = result[:len(indices)]`), which restores the input order.
"""

from collections.abc import Iterator, Sequence

import numpy as np
import tqdm


def round_up(value: int, multiple: int) -> int:
  """`value` rounded up to a multiple of `multiple` (a batch over data-parallel devices)."""
  return max(1, -(-int(value) // int(multiple))) * int(multiple)


def bucket_length(longest: int, multiple: int, cap: int | None = None) -> int:
  """`longest` rounded up to a multiple of `multiple` (at least one), at most `cap`."""
  length = max(1, -(-longest // multiple)) * multiple
  return length if cap is None else min(length, cap)


def pad_rows(rows: Sequence[Sequence[int]], length: int, pad_id: int, side: str = "right",
             batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """(ids, mask), int32 [batch_size or len(rows), length].

  Right padding keeps the first `length` tokens of a longer row (an encoder's [CLS] is
  first); left padding keeps the last (a decoder continues a prompt from its end, which
  stays in the last column). Filler rows up to `batch_size` are one real pad token, so
  no mean, max or softmax over a row is empty (NaN); their results are to be dropped.
  """
  if side not in ("left", "right"):
    raise ValueError(f"side must be 'left' or 'right', got {side!r}")
  if batch_size is None:
    batch_size = len(rows)
  elif len(rows) > batch_size:
    raise ValueError(f"{len(rows)} rows do not fit a batch of {batch_size}")
  ids = np.full((batch_size, length), pad_id, np.int32)
  mask = np.zeros((batch_size, length), np.int32)
  rows = list(rows) + [[pad_id]] * (batch_size - len(rows))
  for i, row in enumerate(rows):
    n = min(len(row), length)
    if side == "right":
      ids[i, :n] = row[:n]
      mask[i, :n] = 1
    else:
      ids[i, length - n:] = row[len(row) - n:]
      mask[i, length - n:] = 1
  return ids, mask


def length_batches(lengths: Sequence[int], batch_size: int) -> Iterator[np.ndarray]:
  """Index arrays of consecutive batches of the rows sorted by length, shortest first.

  The sort is stable, so equal lengths keep their input order; every index appears in
  exactly one batch.
  """
  order = np.argsort(np.asarray(lengths, np.int64), kind="stable")
  for start in range(0, len(order), batch_size):
    yield order[start:start + batch_size]


def padded_batches(rows: Sequence[Sequence[int]], batch_size: int, multiple: int,
                   cap: int | None, pad_id: int, side: str = "right", desc: str | None = None
                   ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """(indices, ids, mask) per batch of `rows` taken by length (`length_batches`).

  Every batch has `batch_size` rows (filler rows after the real ones) and a length
  `bucket_length(longest row, multiple, cap)`; longer rows are cut as `pad_rows` says.
  With `desc`, a progress bar counts the batches when there is more than one.
  """
  lengths = [len(row) for row in rows]
  batches = length_batches(lengths, batch_size)
  if desc is not None:
    count = -(-len(rows) // batch_size)
    batches = tqdm.tqdm(batches, desc=desc, total=count, unit="batch", leave=False,
                        disable=count <= 1)
  for indices in batches:
    length = bucket_length(max(lengths[i] for i in indices), multiple, cap)
    ids, mask = pad_rows([rows[i] for i in indices], length, pad_id, side, batch_size)
    yield indices, ids, mask
