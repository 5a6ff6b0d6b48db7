"""Evaluation while a model trains: rank classification and held-out loss as loop hooks.

A training job hands `hook_fn` its module, vocabulary and what to evaluate; the returned
function runs on the live (sharded) parameters at a hook's step, through the same
`scoring.Scorer` as the evaluation job, and gives scalars the loop writes to
metrics.jsonl and TensorBoard as `eval/<name>`:
  <task>/<language>/weighted_f1   rank classification over the task's prompt variants
                                  (mean over the prompts), on a validation split;
  <task>/weighted_f1              mean over the task's languages;
  heldout_loss                    token loss on a fixed set of held-out batches (e.g.
                                  the alignment pairs of the validation split).
"""

from collections.abc import Callable, Sequence
import dataclasses
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from underrep_jax import parallel
from underrep_jax.data import eval_tasks
from underrep_jax.evaluation import metrics as metric_lib
from underrep_jax.evaluation import scoring
from underrep_jax.models import hf


class VocabularyTokenizer:
  """The tokenizer interface scoring needs, over the SeqIO vocabulary the job trains with
  (a from-scratch model has no tokenizer files until it is exported)."""

  def __init__(self, vocabulary):
    self.vocabulary = vocabulary

  def encode_ids(self, texts) -> list[list[int]]:
    return [list(self.vocabulary.encode(t)) for t in texts]

  def decode_ids(self, rows) -> list[str]:
    return [self.vocabulary.decode(list(r)) for r in rows]


def training_model(module, params, vocabulary, topology: parallel.Topology,
                   hf_config: dict[str, Any] | None = None) -> hf.PretrainedModel:
  """The live parameters as a model the scorer can call (nothing is copied)."""
  model = hf.from_params(module, nn.unbox(params), topology=topology)
  config = dict(hf_config or {})
  config.setdefault("vocab_size", int(vocabulary.vocab_size))
  for key, value in (("pad_token_id", vocabulary.pad_id), ("eos_token_id", vocabulary.eos_id)):
    if config.get(key) is None:
      config[key] = int(value)
  model.hf_config = config
  model.tokenizer = VocabularyTokenizer(vocabulary)  # before the cached property reads files
  return model


@dataclasses.dataclass(frozen=True)
class ClassificationSet:
  """One task's examples and the prompt variants they are scored with; `group` is the
  name the config gave (a mixture reports the mean over its tasks)."""
  group: str
  name: str
  language: str
  labels: tuple[str, ...]
  prompts: tuple
  rows: tuple


def classification_sets(named_tasks: Sequence[tuple[str, eval_tasks.ClassificationTask]],
                        split: str, max_examples: int, prompt_languages: Sequence[str]
                        ) -> list[ClassificationSet]:
  """Reads each (group, task)'s examples once, before training starts."""
  out = []
  for group, task in named_tasks:
    prompts = task.prompts_in(prompt_languages)
    rows = eval_tasks.examples(task, split, max_examples)
    out.append(ClassificationSet(group, task.name, task.language, task.labels, tuple(prompts),
                                 tuple(rows)))
  return out


def classification_scalars(model, sets: Sequence[ClassificationSet], batch_size: int,
                           max_prompt_tokens: int, mode: str = scoring.DEFAULT_MODE
                           ) -> dict[str, float]:
  scorer = scoring.Scorer(model, batch_size=batch_size, max_prompt_tokens=max_prompt_tokens)
  out, by_task = {}, {}
  for s in sets:
    records = scoring.rank_classify(scorer, s.name, s.rows, s.prompts, mode,
                                    desc=f"eval {s.name}")
    f1s = []
    for prompt in s.prompts:
      chosen = [r for r in records if r["prompt"] == prompt.name]
      f1s.append(metric_lib.classification_metrics(
          [r["gold"] for r in chosen], [r["prediction"] for r in chosen])["weighted_f1"])
    out[f"{s.name}/weighted_f1"] = float(np.mean(f1s))
    by_task.setdefault(s.group, []).append(float(np.mean(f1s)))
  for group, values in by_task.items():
    if group not in [s.name for s in sets]:
      out[f"{group}/weighted_f1"] = float(np.mean(values))
  return out


def heldout_loss_fn(loss_fn: Callable, topology: parallel.Topology, batches: Sequence[dict]):
  """Mean token loss over fixed held-out batches (host-local rows, as training reads)."""
  compute = jax.jit(lambda params, batch: loss_fn(params, batch, jax.random.key(0))[:2])

  def heldout_loss(params) -> float:
    total, weight = 0.0, 0.0
    with topology.context():
      for batch in batches:
        loss_sum, loss_weight = compute(params, topology.to_global(batch))
        total += float(parallel.global_to_host_local(loss_sum))
        weight += float(parallel.global_to_host_local(loss_weight))
    return total / max(weight, 1.0)

  return heldout_loss


def hook_fn(*, module, vocabulary, topology: parallel.Topology,
            sets: Sequence[ClassificationSet] = (), batch_size: int = 16,
            max_prompt_tokens: int = 512, loss_fn: Callable | None = None,
            heldout_batches: Sequence[dict] = (), hf_config: dict | None = None):
  """A loop hook function: `fn(context) -> {name: scalar}` on the state at that step."""
  heldout = heldout_loss_fn(loss_fn, topology, heldout_batches) if heldout_batches else None

  def evaluate(context) -> dict[str, float]:
    out = {}
    if sets:
      model = training_model(module, context.state.params, vocabulary, topology, hf_config)
      out.update(classification_scalars(model, sets, batch_size, max_prompt_tokens))
    if heldout is not None:
      out["heldout_loss"] = heldout(context.state.params)
    return out

  return evaluate
