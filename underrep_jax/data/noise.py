"""Word-level noise shared by the InstructAlign MLM, TLM and XSS-corrupt objectives.

Three operations act on the words of a sentence:
  - infilling replaces each word by the blank marker with probability 0.2;
  - deletion drops each word with probability 0.2;
  - permutation shuffles all words.
One combination is drawn per call: each single operation with p=0.24, each pair with
p=0.08, all three with p=0.04 (METHODS.md §1). Operations of a combination run in the
fixed order infilling, deletion, permutation.

Everything takes an explicit `numpy.random.Generator`, so a seed reproduces the data.
"""

import dataclasses

import numpy as np

BLANK = "___"
INFILL, DELETE, PERMUTE = "infill", "delete", "permute"
OPERATIONS = (INFILL, DELETE, PERMUTE)

COMBINATIONS: tuple[tuple[str, ...], ...] = (
    (INFILL,), (DELETE,), (PERMUTE,),
    (INFILL, DELETE), (INFILL, PERMUTE), (DELETE, PERMUTE),
    (INFILL, DELETE, PERMUTE),
)
COMBINATION_PROBABILITIES = (0.24, 0.24, 0.24, 0.08, 0.08, 0.08, 0.04)


@dataclasses.dataclass(frozen=True)
class NoiseConfig:
  infill_probability: float = 0.2
  delete_probability: float = 0.2
  blank: str = BLANK


def choose_operations(rng: np.random.Generator) -> tuple[str, ...]:
  index = rng.choice(len(COMBINATIONS), p=COMBINATION_PROBABILITIES)
  return COMBINATIONS[index]


def infill(words: list[str], rng: np.random.Generator, config: NoiseConfig) -> list[str]:
  mask = rng.random(len(words)) < config.infill_probability
  return [config.blank if m else w for w, m in zip(words, mask)]


def delete(words: list[str], rng: np.random.Generator, config: NoiseConfig) -> list[str]:
  """Drops words; keeps one at random if every word would go, so no text is empty."""
  keep = rng.random(len(words)) >= config.delete_probability
  kept = [w for w, k in zip(words, keep) if k]
  if not kept and words:
    kept = [words[rng.integers(len(words))]]
  return kept


def permute(words: list[str], rng: np.random.Generator) -> list[str]:
  return [words[i] for i in rng.permutation(len(words))]


def apply_operations(words: list[str], operations: tuple[str, ...], rng: np.random.Generator,
                     config: NoiseConfig = NoiseConfig()) -> list[str]:
  for op in OPERATIONS:  # fixed order, whatever order `operations` lists them in
    if op not in operations:
      continue
    if op == INFILL:
      words = infill(words, rng, config)
    elif op == DELETE:
      words = delete(words, rng, config)
    else:
      words = permute(words, rng)
  return words


def add_noise(text: str, rng: np.random.Generator,
              config: NoiseConfig = NoiseConfig()) -> tuple[str, tuple[str, ...]]:
  """Returns the noised text and the operations that were applied."""
  operations = choose_operations(rng)
  words = apply_operations(text.split(), operations, rng, config)
  return " ".join(words), operations
