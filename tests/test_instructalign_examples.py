"""InstructAlign examples: templates, language names, targets and XSS negatives."""

import collections

import numpy as np
import pytest

from underrep_jax.data import instructalign as ia
from underrep_jax.data import noise

PAIR = ia.Pair(source="the cat sleeps on the warm mat today", target="ucing saré dina tikar",
               source_language="English", target_language="Sundanese")
DISTRACTORS = ["ucing saré dina tikar", "abdi badé ka pasar", "hujan turun ti énjing"]


def test_six_templates_per_objective_all_used():
  rng = np.random.default_rng(0)
  for objective in ia.OBJECTIVES:
    assert len(ia.TEMPLATES[objective]) == 6
    used = {ia.make_example(objective, PAIR, rng, distractors=DISTRACTORS, pair_index=0).template
            for _ in range(300)}
    assert used == set(range(6))


@pytest.mark.parametrize("objective", ia.OBJECTIVES)
def test_language_names_are_spelled_out_in_the_right_roles(objective):
  rng = np.random.default_rng(1)
  for _ in range(60):
    ex = ia.make_example(objective, PAIR, rng, distractors=DISTRACTORS, pair_index=0)
    assert "{" not in ex.inputs and "}" not in ex.inputs
    if objective == ia.MLM:
      assert "English" in ex.inputs and "Sundanese" not in ex.inputs
      assert ex.targets == PAIR.source
    elif objective == ia.TLM:
      # clean English context, repaired Sundanese target: names not swapped
      assert PAIR.source in ex.inputs and ex.targets == PAIR.target
      i_src, i_tgt = ex.inputs.index("English"), ex.inputs.index("Sundanese")
      assert "English" in ex.inputs and "Sundanese" in ex.inputs
      assert i_src != i_tgt
    elif objective == ia.MT:
      assert PAIR.source in ex.inputs and ex.targets == PAIR.target
      assert "English" in ex.inputs and "Sundanese" in ex.inputs
    else:
      assert ex.targets in (ia.YES, ia.NO)


def test_mt_template_direction():
  rng = np.random.default_rng(2)
  for _ in range(40):
    ex = ia.make_example(ia.MT, PAIR, rng)
    template = ia.MT_TEMPLATES[ex.template]
    assert ex.inputs == template.format(src_lang="English", tgt_lang="Sundanese", src=PAIR.source)


def test_xss_mismatch_negatives_use_another_sentence():
  rng = np.random.default_rng(3)
  answers = collections.Counter()
  for _ in range(2000):
    ex = ia.make_example(ia.XSS, PAIR, rng, distractors=DISTRACTORS, pair_index=0,
                         xss_negatives=ia.MISMATCH)
    answers[ex.targets] += 1
    assert PAIR.source in ex.inputs
    if ex.targets == ia.NO:
      assert PAIR.target not in ex.inputs
      assert any(d in ex.inputs for d in DISTRACTORS[1:])
    else:
      assert PAIR.target in ex.inputs
  assert abs(answers[ia.YES] - 1000) < 5 * np.sqrt(2000 * 0.25)


def test_xss_corrupt_negatives_are_noised_true_pairs():
  rng = np.random.default_rng(4)
  negatives = 0
  for _ in range(400):
    ex = ia.make_example(ia.XSS, PAIR, rng, xss_negatives=ia.CORRUPT)
    if ex.targets == ia.NO:
      negatives += 1
      assert not any(d in ex.inputs for d in DISTRACTORS[1:])
      true_pair = PAIR.source in ex.inputs and PAIR.target in ex.inputs
      assert not true_pair, ex.inputs
  assert negatives > 100


def test_seeded_examples_reproduce():
  def run(seed):
    rng = np.random.default_rng(seed)
    return [ia.make_example(o, PAIR, rng, distractors=DISTRACTORS, pair_index=0)
            for o in ia.OBJECTIVES * 10]
  assert run(5) == run(5)
  assert run(5) != run(6)


def test_bad_arguments():
  rng = np.random.default_rng(0)
  with pytest.raises(ValueError, match="objective"):
    ia.make_example("nope", PAIR, rng)
  with pytest.raises(ValueError, match="XSS negative"):
    ia.make_example(ia.XSS, PAIR, rng, xss_negatives="weird")
