"""Multi-view sampling: proportional identities and independent views as the original,
the uniform / disjoint options, seeded resume, and the view-level probe's views."""

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


def _uneven_qas(counts=(1, 2, 4, 8, 16, 33)):
  """Identity i has counts[i] QAs; answers name their identity ("answer i-j.")."""
  return [data.QA(f"m{i}|eng", f"m{i}", "eng", f"q{j}", f"question {j}?", f"answer {i}-{j}.")
          for i, n in enumerate(counts) for j in range(n)]


def _view_qas(text):
  return text.split("\n")


def test_render():
  qa = _qas(1, 1)[0]
  assert views.render_qa(qa) == "Q: question 0? A: answer 0-0."
  assert views.render_view([qa, qa]) == "Q: question 0? A: answer 0-0.\nQ: question 0? A: answer 0-0."


def test_defaults_are_the_originals():
  sampler = views.ViewSampler(_qas(), batch_size=4, max_qas_per_view=5)
  assert (sampler.sampling, sampler.disjoint_views) == ("proportional", False)


def test_proportional_sampling_follows_qa_counts():
  counts = (1, 2, 4, 8, 16, 33)
  sampler = views.ViewSampler(_uneven_qas(counts), batch_size=8, max_qas_per_view=5, seed=3)
  # An epoch is one pass over the 64 QAs: 8 batches, each identity exactly its count.
  assert sampler.steps_per_epoch == sum(counts) // 8 == 8
  for epoch in range(3):
    seen = np.concatenate([sampler.batch_identities(epoch * 8 + s) for s in range(8)])
    assert np.bincount(seen, minlength=len(counts)).tolist() == list(counts)
  # Over many steps (and an epoch with a dropped remainder) the shares follow the counts.
  odd = views.ViewSampler(_uneven_qas(counts), batch_size=7, max_qas_per_view=5, seed=3)
  seen = np.concatenate([odd.batch_identities(s) for s in range(900)])
  share = np.bincount(seen, minlength=len(counts)) / len(seen)
  np.testing.assert_allclose(share, np.asarray(counts) / sum(counts), atol=0.01)
  # Nothing is dropped: the identity with one QA trains, on a pair of that same QA.
  rows = [(b.anchors[r], b.positives[r]) for b in map(sampler.batch, range(8))
          for r in range(8) if b.identity_ids[r] == 0]
  assert rows == [("Q: question 0? A: answer 0-0.",) * 2]
  # As in the original, one identity may fill several rows of a batch.
  assert any(len(set(sampler.batch_identities(s).tolist())) < 8 for s in range(8))


def test_independent_views_are_capped_and_may_overlap():
  sampler = views.ViewSampler(_uneven_qas(), batch_size=8, max_qas_per_view=5, seed=1)
  sizes, shared = set(), 0
  for step in range(60):
    batch = sampler.batch(step)
    for ident, anchor, positive in zip(batch.identity_ids, batch.anchors, batch.positives):
      group = sampler.groups[sampler.identities[ident]]
      for view in (_view_qas(anchor), _view_qas(positive)):
        assert len(set(view)) == len(view) <= min(5, len(group))
        assert all(f"answer {ident}-" in line for line in view)
        sizes.add(len(view))
      shared += bool(set(_view_qas(anchor)) & set(_view_qas(positive)))
  assert sizes == {1, 2, 3, 4, 5} and shared > 0


def test_uniform_disjoint_option_holds_distinct_identities_and_disjoint_views():
  sampler = views.ViewSampler(_qas(), batch_size=4, max_qas_per_view=5, seed=7,
                              sampling="uniform", disjoint_views=True)
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


def test_uniform_epochs_cover_every_identity():
  sampler = views.ViewSampler(_qas(), batch_size=3, max_qas_per_view=2, seed=1,
                              sampling="uniform")
  assert sampler.steps_per_epoch == 3
  for epoch in range(3):
    seen = np.concatenate([sampler.batch_identities(epoch * 3 + s) for s in range(3)])
    assert len(set(seen.tolist())) == 9


@pytest.mark.parametrize("make_qas, options", [
    (_uneven_qas, {}), (_qas, {"sampling": "uniform", "disjoint_views": True})])
def test_resumed_sampler_gives_the_same_batches(make_qas, options):
  """A run restarted at step 6, its QAs read in another order, continues exactly."""
  first = views.ViewSampler(make_qas(), batch_size=4, max_qas_per_view=3, seed=5, **options)
  run = [first.batch(step) for step in range(10)]
  resumed = views.ViewSampler(list(reversed(make_qas())), batch_size=4, max_qas_per_view=3,
                              seed=5, **options)
  for step in range(6, 10):
    a, b = run[step], resumed.batch(step)
    assert a.anchors == b.anchors and a.positives == b.positives
    np.testing.assert_array_equal(a.identity_ids, b.identity_ids)
  other = views.ViewSampler(make_qas(), batch_size=4, max_qas_per_view=3, seed=6, **options)
  assert [other.batch(s).anchors for s in range(3)] != [first.batch(s).anchors for s in range(3)]


def test_host_slices_make_up_the_global_batch():
  batch = views.ViewSampler(_qas(), batch_size=4, max_qas_per_view=3).batch(2)
  parts = [batch.host_slice(i, 2) for i in range(2)]
  assert parts[0].anchors + parts[1].anchors == batch.anchors
  np.testing.assert_array_equal(np.concatenate([p.identity_ids for p in parts]),
                                batch.identity_ids)


def test_disjoint_views_need_two_lambda_qas():
  qas = _qas(4, 12) + _qas(6, 12)[-3:]  # identity m2|eng has 3 QAs
  with pytest.raises(DataError, match=r"fake\.csv, identity 'm2\|eng'.*3 QAs.*at least 10"):
    views.ViewSampler(qas, batch_size=2, max_qas_per_view=5, disjoint_views=True)
  views.ViewSampler(qas, batch_size=2, max_qas_per_view=5)  # independent views: fine
  assert views.min_qas_for_training(5, disjoint_views=True) == 10
  assert views.min_qas_for_training(5, disjoint_views=False) == 1
  kept, dropped = views.drop_small_identities(qas, 10)
  assert dropped == ["m2|eng"] and len(kept) == 48


def test_batch_larger_than_the_population():
  with pytest.raises(ValueError, match="distinct ones"):
    views.ViewSampler(_qas(3), batch_size=4, max_qas_per_view=2, sampling="uniform")
  views.ViewSampler(_qas(3), batch_size=4, max_qas_per_view=2)  # 36 QAs
  with pytest.raises(ValueError, match="37, but there are 36 QAs"):
    views.ViewSampler(_qas(3), batch_size=37, max_qas_per_view=2)
  with pytest.raises(ValueError, match="sampling must be one of"):
    views.ViewSampler(_qas(3), batch_size=2, max_qas_per_view=2, sampling="balanced")


def test_identity_views():
  texts, labels = views.identity_views(_qas(4, 12), views_per_identity=3, max_qas_per_view=4)
  assert len(texts) == 12 and labels == sorted(labels)
  assert all(1 <= len(_view_qas(t)) <= 4 for t in texts)


def test_probe_views():
  qas = _uneven_qas((3, 8, 12))
  got = views.probe_views(qas, qas_per_view=5, views_per_identity=4, seed=2)
  assert got.labels == ["m0|eng"] * 4 + ["m1|eng"] * 4 + ["m2|eng"] * 4
  assert got.capped == ["m0|eng"]  # 3 QAs < m: its views hold all three
  by_text = {views.render_qa(qa): qa.identity for qa in qas}
  for text, label in zip(got.texts, got.labels):
    lines = _view_qas(text)
    assert len(lines) == len(set(lines)) == (3 if label == "m0|eng" else 5)
    assert {by_text[line] for line in lines} == {label}
  assert len(set(got.texts[4:8])) > 1  # views of one identity differ
  again = views.probe_views(list(reversed(qas)), 5, 4, seed=2)
  assert again == got
  assert views.probe_views(qas, 5, 4, seed=3).texts != got.texts


def _questions(view):
  return [line.split(" A: ")[0] for line in _view_qas(view)]


def test_aligned_views_share_questions_across_identities():
  qas = _qas(num_identities=8, per_identity=12)
  # One identity lacks q0..q3: it takes the next questions it answered instead.
  qas = [qa for qa in qas if not (qa.identity == "m0|fin" and qa.qid in {"q0", "q1", "q2", "q3"})]
  sampler = views.ViewSampler(qas, batch_size=6, max_qas_per_view=3, seed=3, sampling="uniform",
                              disjoint_views=True, align_questions=True)
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
  again = views.ViewSampler(list(reversed(qas)), 6, 3, seed=3, sampling="uniform",
                            disjoint_views=True, align_questions=True)
  assert again.batch(11).anchors == sampler.batch(11).anchors


def test_aligned_views_need_disjoint_views():
  with pytest.raises(ValueError, match="align_questions needs disjoint_views"):
    views.ViewSampler(_qas(), 4, 3, align_questions=True)
