"""Multi-view sampling: the positive pairs UniVaR trains on.

A view is m QAs of one identity, m uniform in [1, λ] (`max_qas_per_view`), each QA
rendered "Q: ... A: ..." and joined with newlines. Two views of the same identity are a
positive pair; every other view in the global batch is a negative. The original code
could put one identity twice in a batch, which makes false negatives, so each batch
here holds `identities_per_batch` distinct identities, two views each.

`ViewSampler.batch(step)` is a pure function of (seed, step): a run resumed at step s
gets the batches it would have got, with no iterator state to checkpoint. Identities are
visited in epochs: a seeded permutation per epoch, cut into batches (the remainder of
each epoch is dropped), so every identity is seen about equally often.
"""

from collections.abc import Iterable, Mapping, Sequence
import collections
import dataclasses

import numpy as np

from underrep_jax.data.errors import DataError
from underrep_jax.univar.data import QA, group_by_identity

# Purposes of the random streams, so that two streams never share a seed.
_EPOCH_STREAM = 0
_VIEW_STREAM = 1
_EVAL_STREAM = 2


def render_qa(qa: QA) -> str:
  return f"Q: {qa.question} A: {qa.answer}"


def render_view(qas: Iterable[QA]) -> str:
  return "\n".join(render_qa(qa) for qa in qas)


@dataclasses.dataclass(frozen=True)
class ViewBatch:
  """Row i of `anchors` and of `positives` are two views of identity `identity_ids[i]`."""
  anchors: list[str]
  positives: list[str]
  identity_ids: np.ndarray  # int32 [batch], indices into ViewSampler.identities
  step: int

  def __len__(self) -> int:
    return len(self.anchors)

  def host_slice(self, process_index: int, process_count: int) -> "ViewBatch":
    """This host's contiguous share, the layout `make_array_from_process_local_data` wants."""
    size = len(self)
    if size % process_count:
      raise ValueError(f"batch of {size} identities does not split over {process_count} hosts")
    per_host = size // process_count
    part = slice(process_index * per_host, (process_index + 1) * per_host)
    return ViewBatch(self.anchors[part], self.positives[part], self.identity_ids[part],
                     self.step)


def _as_groups(qas: Mapping[str, Sequence[QA]] | Iterable[QA]) -> dict[str, list[QA]]:
  """Identity -> QAs, both sorted, so that the views do not depend on file order."""
  groups = qas if isinstance(qas, Mapping) else group_by_identity(qas)
  return {k: sorted(groups[k], key=lambda qa: (qa.qid, qa.question, qa.answer))
          for k in sorted(groups)}


def _rng(seed: int, *keys: int) -> np.random.Generator:
  return np.random.default_rng([seed, *keys])


def _check_enough(groups: Mapping[str, Sequence[QA]], needed: int, why: str) -> None:
  for identity, group in groups.items():
    if len(group) < needed:
      where = group[0].source if group and group[0].source else "the input QAs"
      raise DataError(f"{where}, identity {identity!r}, field 'qid': {len(group)} QAs, but "
                      f"{why} needs at least {needed}; lower max_qas_per_view or drop the "
                      "identity (univar.views.drop_small_identities)")


def drop_small_identities(qas: Iterable[QA], min_qas: int) -> tuple[list[QA], list[str]]:
  """(QAs of identities with >= `min_qas` QAs, the dropped identities), for a job to log."""
  groups = group_by_identity(qas)
  dropped = [k for k, g in groups.items() if len(g) < min_qas]
  kept = [qa for k, g in groups.items() if k not in dropped for qa in g]
  return kept, dropped


class ViewSampler:
  """Seeded, resumable batches of two views for each of B distinct identities."""

  def __init__(self, qas: Mapping[str, Sequence[QA]] | Iterable[QA], identities_per_batch: int,
               max_qas_per_view: int, seed: int = 0, disjoint_views: bool = True,
               align_questions: bool = False):
    """`disjoint_views`: the two views of a pair share no QA, so that the pair cannot be
    matched by repeated text; each identity then needs 2 * max_qas_per_view QAs
    (else max_qas_per_view).

    `align_questions`: all anchors of a batch answer the same questions (in the same
    order), and so do all positives, as far as each identity answered them. Where every
    identity answers the same questionnaire (EUValues, SpeechMap), unaligned views let a
    negative share questions with the anchor while the positive shares none, so early
    training matches question topics, not answers, and collapses; aligned views differ
    only in their answers. Needs disjoint views.
    """
    if max_qas_per_view < 1:
      raise ValueError(f"max_qas_per_view must be >= 1, got {max_qas_per_view}")
    if seed < 0:
      raise ValueError(f"seed must be >= 0, got {seed}")
    self.groups = _as_groups(qas)
    self.identities = tuple(self.groups)
    if not 1 <= identities_per_batch <= len(self.identities):
      raise ValueError(f"identities_per_batch={identities_per_batch}, but a batch holds "
                       f"distinct identities and there are {len(self.identities)}")
    self.identities_per_batch = identities_per_batch
    self.max_qas_per_view = max_qas_per_view
    self.seed = seed
    self.disjoint_views = disjoint_views
    if align_questions and not disjoint_views:
      raise ValueError("align_questions needs disjoint_views")
    self.align_questions = align_questions
    # qid -> QA per identity, for aligned views (a repeated qid: its first answer stands).
    self._by_qid = [{} for _ in self.identities]
    for by_qid, identity in zip(self._by_qid, self.identities):
      for qa in self.groups[identity]:
        by_qid.setdefault(qa.qid, qa)
    needed = 2 * max_qas_per_view if disjoint_views else max_qas_per_view
    _check_enough(self.groups, needed, f"two disjoint views of up to {max_qas_per_view} QAs"
                  if disjoint_views else f"a view of up to {max_qas_per_view} QAs")

  @property
  def steps_per_epoch(self) -> int:
    return len(self.identities) // self.identities_per_batch

  def batch_identities(self, step: int) -> np.ndarray:
    """Indices of the distinct identities of batch `step`."""
    if step < 0:
      raise ValueError(f"step must be >= 0, got {step}")
    epoch, position = divmod(step, self.steps_per_epoch)
    order = _rng(self.seed, _EPOCH_STREAM, epoch).permutation(len(self.identities))
    start = position * self.identities_per_batch
    return order[start:start + self.identities_per_batch].astype(np.int32)

  def _pair(self, step: int, identity_index: int) -> tuple[str, str]:
    group = self.groups[self.identities[identity_index]]
    rng = _rng(self.seed, _VIEW_STREAM, step, identity_index)
    m1, m2 = rng.integers(1, self.max_qas_per_view + 1, size=2)
    if self.disjoint_views:
      chosen = rng.choice(len(group), size=m1 + m2, replace=False)
      first, second = chosen[:m1], chosen[m1:]
    else:
      first = rng.choice(len(group), size=m1, replace=False)
      second = rng.choice(len(group), size=m2, replace=False)
    return (render_view(group[i] for i in first), render_view(group[i] for i in second))

  def _aligned_pairs(self, step: int, ids: np.ndarray) -> list[tuple[str, str]]:
    """Pairs whose anchors share questions, as do their positives (see __init__).

    Questions are ranked by how many of the batch's identities answered them (ties in a
    seeded random order); each identity's anchor is its first m1 answered questions of
    that ranking and its positive the next m2, with m1, m2 ~ U[1, λ] drawn per batch.
    """
    rng = _rng(self.seed, _VIEW_STREAM, step)
    m1, m2 = (int(m) for m in rng.integers(1, self.max_qas_per_view + 1, size=2))
    answers = [self._by_qid[int(i)] for i in ids]
    counts = collections.Counter(qid for by_qid in answers for qid in by_qid)
    qids = sorted(counts)
    tiebreak = rng.random(len(qids))
    ranking = [qids[j] for j in sorted(range(len(qids)),
                                       key=lambda j: (-counts[qids[j]], tiebreak[j]))]
    pairs = []
    for by_qid in answers:
      own = [by_qid[qid] for qid in ranking if qid in by_qid]
      pairs.append((render_view(own[:m1]), render_view(own[m1:m1 + m2])))
    return pairs

  def batch(self, step: int) -> ViewBatch:
    """The global batch of `step`: a pure function of (seed, step)."""
    ids = self.batch_identities(step)
    if self.align_questions:
      pairs = self._aligned_pairs(step, ids)
    else:
      pairs = [self._pair(step, int(i)) for i in ids]
    return ViewBatch([a for a, _ in pairs], [p for _, p in pairs], ids, step)


def identity_views(qas: Mapping[str, Sequence[QA]] | Iterable[QA], views_per_identity: int,
                   max_qas_per_view: int, seed: int = 0) -> tuple[list[str], list[str]]:
  """(view texts, their identities): `views_per_identity` seeded views of every identity.

  For the value map, whose identity points are the mean embedding of many views.
  """
  groups = _as_groups(qas)
  _check_enough(groups, 1, "a view")
  texts, labels = [], []
  for index, (identity, group) in enumerate(groups.items()):
    rng = _rng(seed, _EVAL_STREAM, index)
    for _ in range(views_per_identity):
      m = int(rng.integers(1, min(max_qas_per_view, len(group)) + 1))
      texts.append(render_view(group[i] for i in rng.choice(len(group), size=m, replace=False)))
      labels.append(identity)
  return texts, labels
