"""Zero-shot classification by log-likelihood of each label's continuation.

The prompt is run once per example through the model with the KV cache; the cache is
then repeated once per label and every label continuation is scored from that cached
state in one more call, instead of re-running the prompt once per label.

Scoring modes (a [examples, labels] score matrix each):
  sum    sum of the label tokens' log-probabilities (the default: the likelihood of the
         answer itself, so a label split into more tokens is not favoured by averaging,
         and the prompt, shared by all labels, does not dilute the differences);
  mean   that sum divided by the label's token count (length-normalised);
  whole  mean log-probability over every predicted token of prompt + label, the
         original InstructAlign convention (the per-sequence language-model loss).
For encoder-decoders (mT0) the prompt is encoded once and each label is scored with the
decoder; there `whole` equals `mean` (the decoder only sees the label).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from underrep_jax import models
from underrep_jax.evaluation import model_loading
from underrep_jax.models import batching

MODES = ("sum", "mean", "whole")
DEFAULT_MODE = "sum"


def _token_logprobs(logits, targets):
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]


def _repeat(tree, times: int):
  """Repeats every batch-major array of a cache `times` over, row by row."""
  return jax.tree.map(lambda x: jnp.repeat(x, times, axis=0) if x.ndim else x, tree)


def _decoder_scores(module, params, prompt_ids, prompt_mask, label_ids, label_mask,
                    with_prompt: bool):
  """Per example and label: label log-prob sum, and (optionally) the prompt's sum."""
  batch, prompt_len = prompt_ids.shape
  num_labels, label_len = label_ids.shape
  cache = models.init_cache(module, batch, prompt_len + label_len)
  logits, state = module.apply({"params": params, "cache": cache}, prompt_ids,
                               attention_mask=prompt_mask, decode=True, mutable=["cache"])
  cache = _repeat(state["cache"], num_labels)
  flat_ids = jnp.tile(label_ids, (batch, 1))
  flat_mask = jnp.tile(label_mask, (batch, 1))
  label_logits, _ = module.apply({"params": params, "cache": cache}, flat_ids,
                                 attention_mask=flat_mask, decode=True, mutable=["cache"])
  label_logits = label_logits.reshape(batch, num_labels, label_len, -1)
  # Token t of a label is predicted by the logits before it: the prompt's last (left
  # padding keeps it in the last column) for t = 0, the label's own for t > 0.
  first = jnp.broadcast_to(logits[:, -1][:, None, None], (batch, num_labels, 1, logits.shape[-1]))
  predicting = jnp.concatenate([first, label_logits[:, :, :-1]], axis=2)
  lp = _token_logprobs(predicting, jnp.broadcast_to(label_ids, (batch, num_labels, label_len)))
  label_sum = jnp.sum(lp * label_mask[None], axis=-1)
  if not with_prompt:
    return label_sum, jnp.zeros((batch,)), jnp.zeros((batch,))
  plp = _token_logprobs(logits[:, :-1], prompt_ids[:, 1:])
  valid = (prompt_mask[:, :-1] * prompt_mask[:, 1:]).astype(jnp.float32)
  return label_sum, jnp.sum(plp * valid, axis=-1), jnp.sum(valid, axis=-1)


def _encoder_decoder_scores(module, params, prompt_ids, prompt_mask, label_ids, label_mask,
                            start_id: int):
  """Encodes each prompt once; the decoder scores every label against that encoding."""
  batch = prompt_ids.shape[0]
  num_labels, label_len = label_ids.shape
  encoded = module.apply({"params": params}, prompt_ids, encoder_mask=prompt_mask,
                         method=module.encode)
  encoded = jnp.repeat(encoded, num_labels, axis=0)
  enc_ids = jnp.repeat(prompt_ids, num_labels, axis=0)
  enc_mask = jnp.repeat(prompt_mask, num_labels, axis=0)
  targets = jnp.tile(label_ids, (batch, 1))
  dec_in = jnp.concatenate([jnp.full((targets.shape[0], 1), start_id, targets.dtype),
                            targets[:, :-1]], axis=1)
  logits = module.apply({"params": params}, encoded, enc_ids, dec_in, encoder_mask=enc_mask,
                        decoder_mask=jnp.tile(label_mask, (batch, 1)), method=module.decode)
  lp = _token_logprobs(logits, targets).reshape(batch, num_labels, label_len)
  label_sum = jnp.sum(lp * label_mask[None], axis=-1)
  return label_sum, jnp.zeros((batch,)), jnp.zeros((batch,))


def scoring_fn(module, kind: str, start_id: int = 0):
  """`fn(params, prompt_ids, prompt_mask, label_ids, label_mask, with_prompt)` for a
  model kind: the function `Scorer` jits (and `plan` compiles for a target)."""
  if kind == "decoder":
    return functools.partial(_decoder_scores, module)
  if kind == "encoder_decoder":
    return lambda p, a, b, c, d, with_prompt: _encoder_decoder_scores(
        module, p, a, b, c, d, start_id)
  raise TypeError(f"{kind} models cannot score: scoring needs a language model")


def lower(module, kind: str, topology, *, batch_size: int, prompt_length: int,
          num_labels: int, label_length: int, with_prompt: bool = False):
  """The scoring step of one batch lowered with abstract shapes on `topology`: the
  parameters in their logical shardings, the batch over the data-parallel devices."""
  from underrep_jax.models import initialize
  params = initialize.abstract_params(module, topology)
  batch = topology.batch_sharding(2)
  ids = jax.ShapeDtypeStruct((batch_size, prompt_length), jnp.int32, sharding=batch)
  labels = jax.ShapeDtypeStruct((num_labels, label_length), jnp.int32,
                                sharding=topology.replicated())
  fn = jax.jit(scoring_fn(module, kind), static_argnames=("with_prompt",))
  with topology.context():
    return fn.lower(params, ids, ids, labels, labels, with_prompt=with_prompt)


class Scorer:
  """Scores label continuations of prompts with one loaded model, batched and jitted.

  Prompts are batched in order of length, so a batch pads little, and shapes are bucketed
  (prompt length to a multiple of `length_multiple`, a fixed batch size) so a whole
  evaluation compiles a handful of times; scores come back in the prompts' order. On a
  topology each batch is split over the data-parallel devices and hosts (the batch size
  is rounded up to a multiple of them), and every process gets every score.
  """

  def __init__(self, model, batch_size: int = 16, max_prompt_tokens: int = 512,
               length_multiple: int = 32):
    self.model = model
    self.batch_size = batching.round_up(batch_size, model.batch_multiple)
    self.max_prompt_tokens = max_prompt_tokens
    self.length_multiple = length_multiple
    self.pad = model.ids.pad
    if model.kind not in ("decoder", "encoder_decoder"):
      raise TypeError(f"{model.family} is an encoder; scoring needs a language model")
    start = self.pad if model.ids.decoder_start is None else model.ids.decoder_start
    self._fn = jax.jit(scoring_fn(model.module, model.kind, start),
                       static_argnames=("with_prompt",))

  def score(self, prompts: list[str], answers: list[str], modes=MODES,
            desc: str = "scoring") -> dict[str, np.ndarray]:
    """{mode: [len(prompts), len(answers)] scores}; every prompt is scored with every answer."""
    for mode in modes:
      if mode not in MODES:
        raise ValueError(f"unknown scoring mode {mode!r}; known: {', '.join(MODES)}")
    if not answers:
      raise ValueError("no answers (labels) to score")
    tokenized = model_loading.encode(self.model, prompts)
    label_tokens = model_loading.encode(self.model, answers)
    for answer, ids in zip(answers, label_tokens):
      if not ids:
        raise ValueError(f"answer {answer!r} tokenizes to nothing")
    return self.score_ids(tokenized, label_tokens, modes, desc)

  def score_ids(self, prompt_tokens, label_tokens, modes=MODES, desc="scoring"):
    """`score` on token ids: {mode: [prompts, labels]}, in the prompts' order."""
    model_loading.check_token_ids(self.model, {"example": prompt_tokens,
                                                "answer": label_tokens}, desc)
    label_len = max(len(t) for t in label_tokens)
    label_ids, label_mask = batching.pad_rows(label_tokens, label_len, self.pad)
    label_count = label_mask.sum(-1).astype(np.float64)
    with_prompt = "whole" in modes
    label_sum = np.zeros((len(prompt_tokens), len(label_tokens)))
    prompt_sum, prompt_count = np.zeros(len(prompt_tokens)), np.zeros(len(prompt_tokens))
    for indices, ids, mask in batching.padded_batches(
        prompt_tokens, self.batch_size, self.length_multiple, self.max_prompt_tokens, self.pad,
        side="left", desc=desc):
      out = self.model.call_batch(lambda p, *a: self._fn(p, *a, with_prompt=with_prompt),
                                  (ids, mask), label_ids, label_mask)
      label_sum[indices], prompt_sum[indices], prompt_count[indices] = (
          np.asarray(x, np.float64)[:len(indices)] for x in out)
    out = {}
    if "sum" in modes:
      out["sum"] = label_sum
    if "mean" in modes:
      out["mean"] = label_sum / label_count[None]
    if "whole" in modes:
      if self.model.kind == "encoder_decoder":
        out["whole"] = label_sum / label_count[None]
      else:
        total = prompt_sum[:, None] + label_sum
        out["whole"] = total / (prompt_count[:, None] + label_count[None])
    _check_finite_scores(self.model, out, desc)
    return out


def _model_name(model) -> str:
  return str(getattr(model, "source", None) or getattr(model, "family", "the model"))


def _check_finite_scores(model, scores: dict, desc: str) -> None:
  """A NaN/Inf score would rank arbitrarily and break predictions.jsonl (bare NaN)."""
  from underrep_jax.errors import ModelError
  for mode, values in scores.items():
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
      row, answer = (int(i) for i in bad[0])
      raise ModelError(f"{_model_name(model)}: {desc} example {row}: non-finite {mode} score "
                       f"{values[row, answer]} for answer {answer}; the weights or the "
                       "compute dtype overflow (try --config.model.dtype=float32)")


def rank_classify(scorer: Scorer, task: str, rows: list[dict], prompt_variants, mode: str,
                  desc: str = "") -> list[dict]:
  """Rank classification of `rows` (text, language, label, id) under each prompt variant:
  one record per example and variant, with every label's score and the best label."""
  records = []
  for prompt in prompt_variants:
    labels = list(prompt.verbalizer)
    texts = [prompt.fill(r["text"], r["language"]) for r in rows]
    scores = scorer.score(texts, [prompt.answer(l) for l in labels], modes=(mode,),
                          desc=f"{desc or task}/{prompt.name}")[mode]
    for row, row_scores in zip(rows, scores):
      records.append({
          "id": row["id"], "task": task, "language": row["language"], "prompt": prompt.name,
          "prompt_language": prompt.prompt_language,
          "scores": {l: float(s) for l, s in zip(labels, row_scores)},
          "prediction": labels[int(np.argmax(row_scores))], "gold": row["label"]})
  return records
