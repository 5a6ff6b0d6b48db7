"""Multi-view sampling: distinct identities per batch, views of 1..λ QAs, seeded resume."""

import numpy as np
import pytest

from underrep_jax.data.errors import DataError
from underrep_jax.univar import data
from underrep_jax.univar import views


def _qas(num_identities=10, per_identity=12):
  return [data.QA(data.identity_name(f"m{i // 2}", "eng" if i % 2 else "fin"), f"m{i // 2}",
                  "eng" if i % 2 else "fin", f"q{j}", f"question {j}?",
                  f"answer {i}-{j}.", "fake.csv", j + 2)
          for i in range(num_identities) for j in range(per_identity)]


def _view_qas(text):
  return text.split("\n")


def test_render():
  qa = _qas(1, 1)[0]
  assert views.render_qa(qa) == "Q: question 0? A: answer 0-0."
  assert views.render_view([qa, qa]) == "Q: question 0? A: answer 0-0.\nQ: question 0? A: answer 0-0."


def test_batches_hold_distinct_identities_and_proper_views():
  sampler = views.ViewSampler(_qas(), identities_per_batch=4, max_qas_per_view=5, seed=7)
  sizes = set()
  for step in range(40):
    batch = sampler.batch(step)
    assert len(batch) == 4 and len(batch.positives) == 4
    assert len(set(batch.identity_ids.tolist())) == 4
    for ident, anchor, positive in zip(batch.identity_ids, batch.anchors, batch.positives):
      name = sampler.identities[ident]
      a, p = _view_qas(anchor), _view_qas(positive)
      sizes.update((len(a), len(p)))
      assert not set(a) & set(p)  # disjoint views
      owner = {f"answer {int(name[1]) * 2 + (name.endswith('eng'))}-"}
      for line in a + p:
        assert line.startswith("Q: question ") and any(o in line for o in owner)
  assert sizes == {1, 2, 3, 4, 5}


def test_epochs_cover_every_identity():
  sampler = views.ViewSampler(_qas(), identities_per_batch=3, max_qas_per_view=2, seed=1)
  assert sampler.steps_per_epoch == 3
  for epoch in range(3):
    seen = np.concatenate([sampler.batch_identities(epoch * 3 + s) for s in range(3)])
    assert len(set(seen.tolist())) == 9


def test_batch_is_a_pure_function_of_seed_and_step():
  first = views.ViewSampler(_qas(), identities_per_batch=4, max_qas_per_view=3, seed=5)
  resumed = views.ViewSampler(list(reversed(_qas())), identities_per_batch=4,
                              max_qas_per_view=3, seed=5)
  for step in (0, 1, 17, 3):
    a, b = first.batch(step), resumed.batch(step)
    assert a.anchors == b.anchors and a.positives == b.positives
    np.testing.assert_array_equal(a.identity_ids, b.identity_ids)
  other = views.ViewSampler(_qas(), identities_per_batch=4, max_qas_per_view=3, seed=6)
  assert [other.batch(s).anchors for s in range(3)] != [first.batch(s).anchors for s in range(3)]


def test_host_slices_make_up_the_global_batch():
  batch = views.ViewSampler(_qas(), identities_per_batch=4, max_qas_per_view=3).batch(2)
  parts = [batch.host_slice(i, 2) for i in range(2)]
  assert parts[0].anchors + parts[1].anchors == batch.anchors
  np.testing.assert_array_equal(np.concatenate([p.identity_ids for p in parts]),
                                batch.identity_ids)


def test_identity_with_too_few_qas_is_an_error():
  qas = _qas(4, 12) + _qas(6, 12)[-3:]  # identity m2|fin... has 3 QAs
  with pytest.raises(DataError, match=r"fake\.csv, identity 'm2\|eng'.*3 QAs.*at least 10"):
    views.ViewSampler(qas, identities_per_batch=2, max_qas_per_view=5)
  views.ViewSampler(qas, identities_per_batch=2, max_qas_per_view=3, disjoint_views=False)
  kept, dropped = views.drop_small_identities(qas, 10)
  assert dropped == ["m2|eng"] and len(kept) == 48


def test_too_many_identities_per_batch():
  with pytest.raises(ValueError, match="distinct identities"):
    views.ViewSampler(_qas(3), identities_per_batch=4, max_qas_per_view=2)


def test_identity_views():
  texts, labels = views.identity_views(_qas(4, 12), views_per_identity=3, max_qas_per_view=4)
  assert len(texts) == 12 and labels == sorted(labels)
  assert all(1 <= len(_view_qas(t)) <= 4 for t in texts)


def _questions(view):
  return [line.split(" A: ")[0] for line in _view_qas(view)]


def test_aligned_views_share_questions_across_identities():
  qas = _qas(num_identities=8, per_identity=12)
  # One identity lacks q0..q3: it takes the next questions it answered instead.
  qas = [qa for qa in qas if not (qa.identity == "m0|fin" and qa.qid in {"q0", "q1", "q2", "q3"})]
  sampler = views.ViewSampler(qas, identities_per_batch=6, max_qas_per_view=3, seed=3,
                              align_questions=True)
  sizes = set()
  for step in range(30):
    batch = sampler.batch(step)
    assert len(set(batch.identity_ids.tolist())) == 6
    full = [i for i, ident in enumerate(batch.identity_ids)
            if sampler.identities[ident] != "m0|fin"]
    anchor_questions = {tuple(_questions(batch.anchors[i])) for i in full}
    positive_questions = {tuple(_questions(batch.positives[i])) for i in full}
    assert len(anchor_questions) == 1 and len(positive_questions) == 1  # same questions, order
    (a,), (p,) = anchor_questions, positive_questions
    assert not set(a) & set(p)
    sizes.update((len(a), len(p)))
    for ident, anchor, positive in zip(batch.identity_ids, batch.anchors, batch.positives):
      assert not set(_view_qas(anchor)) & set(_view_qas(positive))
      for line in _view_qas(anchor) + _view_qas(positive):  # every QA is the identity's own
        assert any(line == views.render_qa(qa) for qa in sampler.groups[sampler.identities[ident]])
  assert sizes == {1, 2, 3}
  again = views.ViewSampler(list(reversed(qas)), 6, 3, seed=3, align_questions=True)
  assert again.batch(11).anchors == sampler.batch(11).anchors


def test_aligned_views_need_disjoint_views():
  with pytest.raises(ValueError, match="align_questions needs disjoint_views"):
    views.ViewSampler(_qas(), 4, 3, disjoint_views=False, align_questions=True)
