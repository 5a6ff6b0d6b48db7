"""Multi-view sampling: the positive pairs UniVaR trains on.

A view is m QAs of one identity, m uniform in [1, λ] (`max_qas_per_view`), each QA
rendered "Q: ... A: ..." and joined with newlines. Two views of the same identity are a
positive pair; every other view in the global batch is a negative.

Sampling (`sampling`), as in the authors' training code by default:
- "proportional" (the original): an epoch is one pass over the QAs; each QA is a slot
  that stands for its identity, the slots are shuffled and cut into batches (the
  remainder dropped). Identities are drawn in proportion to their QA counts, and one
  identity can fill several rows of a batch (their views are then false negatives of
  each other; `loss.info_nce` can mask them).
- "uniform": a seeded permutation of the identities per epoch, so every identity is seen
  equally often and a batch never holds one identity twice.

Views (`disjoint_views`): the original draws the two views independently, each of
min(m, n) of the identity's n QAs, so they may share QAs and an identity with one QA
still trains. Disjoint views cannot be matched by repeated text, but need 2λ QAs.

`ViewSampler.batch(step)` is a pure function of (seed, step): a run resumed at step s
gets the batches it would have got, with no iterator state to checkpoint.
"""

from collections.abc import Iterable, Mapping, Sequence
import collections
import dataclasses

import numpy as np

from underrep_jax.data.errors import DataError
from underrep_jax.univar.data import QA, group_by_identity

SAMPLING = ("proportional", "uniform")
# Purposes of the random streams, so that two streams never share a seed.
_EPOCH_STREAM = 0
_VIEW_STREAM = 1
_EVAL_STREAM = 2
_PROBE_STREAM = 3


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


def min_qas_for_training(max_qas_per_view: int, disjoint_views: bool) -> int:
  """QAs an identity needs to give training pairs: 2λ for disjoint views, else 1."""
  return 2 * max_qas_per_view if disjoint_views else 1


class ViewSampler:
  """Seeded, resumable batches of `batch_size` positive pairs (see the module doc)."""

  def __init__(self, qas: Mapping[str, Sequence[QA]] | Iterable[QA], batch_size: int,
               max_qas_per_view: int, seed: int = 0, sampling: str = "proportional",
               disjoint_views: bool = False, align_questions: bool = False):
    """`align_questions`: all anchors of a batch answer the same questions (in the same
    order), and so do all positives, as far as each identity answered them. Where every
    identity answers the same questionnaire (EUValues, SpeechMap), unaligned views let a
    negative share questions with the anchor while the positive shares none, so early
    training can match question topics, not answers; aligned views differ only in their
    answers. Needs disjoint views.
    """
    if max_qas_per_view < 1:
      raise ValueError(f"max_qas_per_view must be >= 1, got {max_qas_per_view}")
    if seed < 0:
      raise ValueError(f"seed must be >= 0, got {seed}")
    if sampling not in SAMPLING:
      raise ValueError(f"sampling must be one of {SAMPLING}, got {sampling!r}")
    if align_questions and not disjoint_views:
      raise ValueError("align_questions needs disjoint_views")
    self.groups = _as_groups(qas)
    self.identities = tuple(self.groups)
    self.sampling = sampling
    # One slot per QA (its identity's index): proportional sampling shuffles these.
    self._slots = np.repeat(np.arange(len(self.identities), dtype=np.int32),
                            [len(g) for g in self.groups.values()])
    population = len(self._slots) if sampling == "proportional" else len(self.identities)
    if not 1 <= batch_size <= population:
      what = "QAs" if sampling == "proportional" else "identities (a batch holds distinct ones)"
      raise ValueError(f"batch_size={batch_size}, but there are {population} {what}")
    self.batch_size = batch_size
    self.max_qas_per_view = max_qas_per_view
    self.seed = seed
    self.disjoint_views = disjoint_views
    self.align_questions = align_questions
    # qid -> QA per identity, for aligned views (a repeated qid: its first answer stands).
    self._by_qid = [{} for _ in self.identities]
    for by_qid, identity in zip(self._by_qid, self.identities):
      for qa in self.groups[identity]:
        by_qid.setdefault(qa.qid, qa)
    _check_enough(self.groups, min_qas_for_training(max_qas_per_view, disjoint_views),
                  f"two disjoint views of up to {max_qas_per_view} QAs" if disjoint_views
                  else "a view")

  @property
  def num_qas(self) -> int:
    return len(self._slots)

  @property
  def steps_per_epoch(self) -> int:
    """Batches per pass over the QAs (proportional) or over the identities (uniform)."""
    population = self.num_qas if self.sampling == "proportional" else len(self.identities)
    return population // self.batch_size

  def batch_identities(self, step: int) -> np.ndarray:
    """Indices of the identities of batch `step`, one per row."""
    if step < 0:
      raise ValueError(f"step must be >= 0, got {step}")
    epoch, position = divmod(step, self.steps_per_epoch)
    rng = _rng(self.seed, _EPOCH_STREAM, epoch)
    rows = slice(position * self.batch_size, (position + 1) * self.batch_size)
    if self.sampling == "proportional":
      return self._slots[rng.permutation(self.num_qas)[rows]]
    return rng.permutation(len(self.identities))[rows].astype(np.int32)

  def _pair(self, step: int, row: int, identity_index: int) -> tuple[str, str]:
    group = self.groups[self.identities[identity_index]]
    rng = _rng(self.seed, _VIEW_STREAM, step, row)
    m1, m2 = (int(m) for m in rng.integers(1, self.max_qas_per_view + 1, size=2))
    if self.disjoint_views:
      chosen = rng.choice(len(group), size=m1 + m2, replace=False)
      first, second = chosen[:m1], chosen[m1:]
    else:  # As the original: each view on its own, capped at the identity's QAs.
      first = rng.choice(len(group), size=min(m1, len(group)), replace=False)
      second = rng.choice(len(group), size=min(m2, len(group)), replace=False)
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
      pairs = [self._pair(step, row, int(i)) for row, i in enumerate(ids)]
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


@dataclasses.dataclass(frozen=True)
class ProbeViews:
  """Views of m QAs for the view-level probe; `capped`: identities with fewer than m QAs,
  whose views hold all of theirs."""
  texts: list[str]
  labels: list[str]
  capped: list[str]


def probe_views(qas: Mapping[str, Sequence[QA]] | Iterable[QA], qas_per_view: int,
                views_per_identity: int, seed: int = 0) -> ProbeViews:
  """`views_per_identity` views of `qas_per_view` QAs of every identity, each QA set
  drawn without replacement; a pure function of (QAs, seed, m), whatever their order."""
  if qas_per_view < 1 or views_per_identity < 1:
    raise ValueError(f"need qas_per_view >= 1 and views_per_identity >= 1, got "
                     f"{qas_per_view} and {views_per_identity}")
  groups = _as_groups(qas)
  texts, labels, capped = [], [], []
  for index, (identity, group) in enumerate(groups.items()):
    size = min(qas_per_view, len(group))
    if size < qas_per_view:
      capped.append(identity)
    rng = _rng(seed, _PROBE_STREAM, qas_per_view, index)
    for _ in range(views_per_identity):
      texts.append(render_view(group[i] for i in np.sort(
          rng.choice(len(group), size=size, replace=False))))
      labels.append(identity)
  return ProbeViews(texts, labels, capped)
