"""The InstructAlign noise follows its specification in distribution and is seeded."""

import collections
import math

import numpy as np
import pytest

from underrep_jax.data import noise

SENTENCE = " ".join(f"w{i}" for i in range(50))  # distinct words make every op visible
DRAWS = 20000


def _within(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
  return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_combination_probabilities_match_specification():
  rng = np.random.default_rng(0)
  counts = collections.Counter(noise.choose_operations(rng) for _ in range(DRAWS))
  assert set(counts) == set(noise.COMBINATIONS)
  for combo, p in zip(noise.COMBINATIONS, noise.COMBINATION_PROBABILITIES):
    assert _within(counts[combo], DRAWS, p), (combo, counts[combo], DRAWS * p)
  assert math.isclose(sum(noise.COMBINATION_PROBABILITIES), 1.0)


def test_operations_reported_match_the_text_change():
  rng = np.random.default_rng(1)
  words = SENTENCE.split()
  for _ in range(300):
    text, ops = noise.add_noise(SENTENCE, rng)
    out = text.split()
    if noise.DELETE not in ops:
      assert len(out) == len(words)
    if noise.INFILL not in ops:
      assert noise.BLANK not in out
    if ops == (noise.PERMUTE,):
      assert sorted(out) == sorted(words)


@pytest.mark.parametrize("op", [noise.INFILL, noise.DELETE])
def test_per_word_probability_is_point_two(op):
  rng = np.random.default_rng(2)
  words = SENTENCE.split()
  touched = total = 0
  for _ in range(2000):
    out = noise.apply_operations(words, (op,), rng)
    total += len(words)
    touched += out.count(noise.BLANK) if op == noise.INFILL else len(words) - len(out)
  assert _within(touched, total, 0.2), touched / total


def test_permutation_shuffles_all_words():
  rng = np.random.default_rng(3)
  words = SENTENCE.split()
  outs = [noise.apply_operations(words, (noise.PERMUTE,), rng) for _ in range(50)]
  assert all(sorted(o) == sorted(words) for o in outs)
  assert sum(o != words for o in outs) == 50
  # Every position receives many different words over draws: a full shuffle, not a swap.
  assert len({o[0] for o in outs}) > 20


def test_deletion_never_leaves_empty_text():
  rng = np.random.default_rng(4)
  for _ in range(500):
    assert noise.apply_operations(["only"], (noise.DELETE,), rng) == ["only"]


def test_seed_reproduces_and_seeds_differ():
  def draw(seed):
    rng = np.random.default_rng(seed)
    return [noise.add_noise(SENTENCE, rng) for _ in range(20)]
  assert draw(7) == draw(7)
  assert draw(7) != draw(8)
