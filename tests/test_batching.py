"""Length batching: padding content and masks, buckets, and results back in input order."""

import numpy as np
import pytest

from tolerances import float32_tol  # tests/tolerances.py
from underrep_jax.evaluation import model_loading
from underrep_jax.evaluation import scoring
from underrep_jax.evaluation import testing
from underrep_jax.models import batching

PAD = 0


def test_right_padding_keeps_the_first_tokens():
  ids, mask = batching.pad_rows([[5, 6, 7], [8], [1, 2, 3, 4, 9]], 4, PAD)
  np.testing.assert_array_equal(ids, [[5, 6, 7, 0], [8, 0, 0, 0], [1, 2, 3, 4]])
  np.testing.assert_array_equal(mask, [[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]])
  assert ids.dtype == mask.dtype == np.int32


def test_left_padding_keeps_the_last_tokens():
  ids, mask = batching.pad_rows([[5, 6, 7], [8], [1, 2, 3, 4, 9]], 4, PAD, side="left")
  np.testing.assert_array_equal(ids, [[0, 5, 6, 7], [0, 0, 0, 8], [2, 3, 4, 9]])
  np.testing.assert_array_equal(mask, [[0, 1, 1, 1], [0, 0, 0, 1], [1, 1, 1, 1]])


@pytest.mark.parametrize("side, column", [("right", 0), ("left", -1)])
def test_filler_rows_are_one_real_pad_token(side, column):
  ids, mask = batching.pad_rows([[5, 6]], 3, pad_id=7, side=side, batch_size=3)
  assert ids.shape == mask.shape == (3, 3)
  np.testing.assert_array_equal(ids[1:], 7)
  np.testing.assert_array_equal(mask[1:].sum(axis=1), [1, 1])  # nothing pools over 0 tokens
  np.testing.assert_array_equal(mask[1:, column], [1, 1])


def test_too_many_rows_and_unknown_side_are_refused():
  with pytest.raises(ValueError, match="3 rows do not fit a batch of 2"):
    batching.pad_rows([[1]] * 3, 4, PAD, batch_size=2)
  with pytest.raises(ValueError, match="side must be"):
    batching.pad_rows([[1]], 4, PAD, side="middle")


@pytest.mark.parametrize("longest, cap, expected", [
    (0, None, 32), (1, None, 32), (32, None, 32), (33, None, 64), (100, 80, 80), (5, 16, 16)])
def test_bucket_length(longest, cap, expected):
  assert batching.bucket_length(longest, 32, cap) == expected


def test_length_batches_sort_stably_and_cover_every_index_once():
  lengths = [3, 1, 3, 2, 1, 3, 2]
  batches = list(batching.length_batches(lengths, 3))
  assert [b.tolist() for b in batches] == [[1, 4, 3], [6, 0, 2], [5]]


def test_padded_batches_restore_the_input_order():
  rng = np.random.default_rng(0)
  lengths = rng.permutation(np.arange(1, 41))
  rows = [list(range(100 * i + 1, 100 * i + 1 + n)) for i, n in enumerate(lengths)]
  restored = [None] * len(rows)
  seen = []
  for indices, ids, mask in batching.padded_batches(rows, 8, 16, 32, PAD, side="left"):
    assert ids.shape[0] == 8 and ids.shape[1] % 16 == 0 and ids.shape[1] <= 32
    seen.extend(indices.tolist())
    # Sorted by length: a batch pads to its longest row, not to the longest of all.
    assert ids.shape[1] == batching.bucket_length(max(lengths[indices]), 16, 32)
    for i, row_ids, row_mask in zip(indices, ids, mask):
      restored[i] = row_ids[row_mask == 1].tolist()
  assert sorted(seen) == list(range(len(rows)))
  assert restored == [row[-32:] for row in rows]  # cut at the cap from the left


def test_scores_do_not_depend_on_batch_neighbours_or_order(tmp_path):
  testing.save_tiny_lm(tmp_path)
  model = model_loading.load(tmp_path)
  rng = np.random.default_rng(1)
  lengths = [1, 70, 5, 33, 2, 17, 64, 9]  # buckets 8 to 72, so batches differ in padding
  prompts = [rng.integers(3, testing.VOCAB, n).tolist() for n in lengths]
  labels = [[5], [7, 9, 11], [13, 4]]
  scorer = scoring.Scorer(model, batch_size=3, length_multiple=8)
  together = scorer.score_ids(prompts, labels)
  # Alone, a prompt is padded to its own bucket and shares its batch with fillers only;
  # masked positions add exact zeros, but the attention and log-softmax reductions run
  # over other lengths, so results differ by float32 rounding: a 384-way log-softmax
  # after 2 layers (depth 3), relative to the score. A misplaced row is off by far more.
  rtol = float32_tol(testing.VOCAB, depth=3)
  for i, prompt in enumerate(prompts):
    alone = scorer.score_ids([prompt], labels)
    for mode in scoring.MODES:
      np.testing.assert_allclose(together[mode][i], alone[mode][0], rtol=rtol, atol=0,
                                 err_msg=f"{mode} prompt {i}")
