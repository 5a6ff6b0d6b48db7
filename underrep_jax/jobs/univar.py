"""Job: UniVaR contrastive value embeddings (configs/univar.py).

Reads the QAs of every (LLM, language) identity, holds out a share of the questions,
trains a pretrained sentence encoder with InfoNCE on pairs of views of one identity
(the shared loop does sharding, checkpoints, resume and metrics), then evaluates
single-QA identity probes for the trained encoder, the untrained one and TF-IDF, and
draws the value map from the trained encoder's mean view embeddings.
"""

import json
import math
import pathlib

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections

from underrep_jax import files
from underrep_jax import models
from underrep_jax import parallel
from underrep_jax.data.errors import DataError
from underrep_jax.models import hf
from underrep_jax.models import hub
from underrep_jax.train import loop
from underrep_jax.train import metrics as metrics_lib
from underrep_jax.univar import data as data_lib
from underrep_jax.univar import encoder as encoder_lib
from underrep_jax.univar import loss as loss_lib
from underrep_jax.univar import probes
from underrep_jax.univar import views as views_lib

SOURCES = ("euvalues", "speechmap", "univar_csv")
SUMMARY_FILE = "univar_summary.json"
# λ (max QAs per view) -> max tokens per view, as in the paper (the `paper` preset).
PAPER_MAX_LENGTH = {1: 256, 5: 1024, 20: 2048, 80: 8192}


def read_qas(data: ml_collections.ConfigDict) -> list[data_lib.QA]:
  if data.source == "euvalues":
    return data_lib.read_euvalues()
  if data.source == "speechmap":
    return data_lib.read_speechmap(max_answer_words=data.max_answer_words or None)
  if data.source == "univar_csv":
    if not data.path:
      raise ValueError("data.source='univar_csv' needs --config.data.path (a folder of CSVs)")
    return data_lib.read_univar_csv(data.path, max_answer_words=data.max_answer_words or None)
  raise ValueError(f"unknown data.source {data.source!r}; known: {', '.join(SOURCES)}")


def view_length(config) -> int:
  """Tokens per training view: `max_length`, or the paper's value for λ when it is <= 0."""
  if config.max_length > 0:
    return int(config.max_length)
  lam = int(config.views.max_qas)
  if lam not in PAPER_MAX_LENGTH:
    raise ValueError(f"no paper max length for views.max_qas={lam} (known: "
                     f"{sorted(PAPER_MAX_LENGTH)}); set --config.max_length")
  return PAPER_MAX_LENGTH[lam]


def prepare_qas(config) -> tuple[list[data_lib.QA], list[data_lib.QA], list[data_lib.QA]]:
  """(QAs that training views draw from, train QAs for the probes, test QAs).

  Training views need identities with two disjoint views of up to λ QAs; smaller ones
  are left out of training (with a warning) but still take part in the probes and the
  map, which only embed single QAs and short views.
  """
  qas = read_qas(config.data)
  if not qas:
    raise DataError(f"data.source={config.data.source!r}: no usable QAs")
  train, test = data_lib.split_qas(qas, config.data.test_fraction, config.data.split_seed,
                                   unit=config.data.split_unit)
  view_qas, dropped = views_lib.drop_small_identities(train, 2 * int(config.views.max_qas))
  if dropped:
    logging.warning("Not training on %d identities with fewer than %d train QAs (2 disjoint "
                    "views of up to λ=%d); the probes and the map still include them: %s",
                    len(dropped), 2 * config.views.max_qas, config.views.max_qas,
                    ", ".join(dropped))
  if not view_qas:
    raise DataError(f"data.source={config.data.source!r}: no identity has the "
                    f"{2 * config.views.max_qas} train QAs that two views of up to "
                    f"λ={config.views.max_qas} QAs need; lower --config.views.max_qas")
  with_train = {qa.identity for qa in train}
  test = [qa for qa in test if qa.identity in with_train]  # a probe cannot predict the rest
  return view_qas, train, test


def resolve_steps(config, num_train_qas: int) -> int:
  """train.steps, or `train.epochs` passes over the train QAs when epochs > 0.

  One step reads 2 views per identity of (λ + 1) / 2 QAs on average, so an epoch (every
  train QA seen once in expectation) is num_train_qas / (batch_size * (λ + 1)) steps.
  """
  if config.train.epochs and config.train.epochs > 0:
    per_step = config.train.batch_size * (config.views.max_qas + 1)
    return max(1, math.ceil(config.train.epochs * num_train_qas / per_step))
  return int(config.train.steps)


def make_loss_fn(module, logit_scale: float, symmetric: bool, dropout: bool):
  """InfoNCE on the global batch, in the loop's sum convention (weight = pairs)."""

  def loss_fn(params, batch, rng):
    anchor_rng, positive_rng = jax.random.split(rng)
    anchors = encoder_lib.embed(module, params, batch["anchor_input_tokens"],
                                batch["anchor_mask"], deterministic=not dropout, rng=anchor_rng)
    positives = encoder_lib.embed(module, params, batch["positive_input_tokens"],
                                  batch["positive_mask"], deterministic=not dropout,
                                  rng=positive_rng)
    loss = loss_lib.info_nce(anchors, positives, logit_scale=logit_scale, symmetric=symmetric)
    size = jnp.asarray(anchors.shape[0], jnp.float32)
    correct = loss_lib.pair_accuracy(anchors, positives) * size  # summed, like the loss
    return loss * size, size, {"pair_accuracy": correct}

  return loss_fn


def make_batch_factory(sampler: views_lib.ViewSampler, tokenizer, length: int, pad_id: int,
                       shard: tuple[int, int] | None = None):
  """start -> this host's tokenised batches for steps start, start + 1, ...

  `shard` is (index, count) of this host's rows (`parallel.data_shard`; default: one
  shard per process).
  """
  index, count = shard or (jax.process_index(), jax.process_count())

  def make_batches(start: int):
    step = start
    while True:
      batch = sampler.batch(step).host_slice(index, count)
      anchor_ids, anchor_mask = encoder_lib.tokenize(tokenizer, batch.anchors, length, pad_id)
      positive_ids, positive_mask = encoder_lib.tokenize(tokenizer, batch.positives, length,
                                                         pad_id)
      yield {"anchor_input_tokens": anchor_ids, "anchor_mask": anchor_mask,
             "positive_input_tokens": positive_ids, "positive_mask": positive_mask}
      step += 1

  return make_batches


def _host_params(params):
  """Full numpy params on every host, so evaluation runs locally on each."""
  return jax.tree.map(parallel.global_to_host_local, params)


def evaluate(config, workdir: pathlib.Path, module, tokenizer, trained_params, base_params,
             train, test) -> dict:
  """Probes (trained, untrained, TF-IDF) -> univar_eval.json; value map -> PNGs, CSV, report."""
  from underrep_jax.univar import value_map  # umap / matplotlib: slow to import
  pad_id = int(module.config.pad_token_id)
  single = encoder_lib.Embedder(module, tokenizer, config.eval.max_length,
                                config.eval.batch_size, pad_id)
  train_texts = [views_lib.render_qa(qa) for qa in train]
  test_texts = [views_lib.render_qa(qa) for qa in test]
  train_labels = [qa.identity for qa in train]
  test_labels = [qa.identity for qa in test]
  features = {}
  for name, params in (("univar", trained_params), ("base", base_params)):
    features[name] = (single(params, train_texts, desc=f"{name} train QAs"),
                      single(params, test_texts, desc=f"{name} test QAs"))
  features["tfidf"] = probes.tfidf_features(train_texts, test_texts,
                                            max_features=config.eval.tfidf_max_features or None)
  results = probes.evaluate(features, train_labels, test_labels, k=config.eval.k)

  view_texts, view_labels = views_lib.identity_views(
      train, config.eval.views_per_identity, config.views.max_qas, seed=config.views.seed)
  views = encoder_lib.Embedder(module, tokenizer, view_length(config), config.eval.batch_size,
                               pad_id)
  view_embeddings = views(trained_params, view_texts, desc="identity views")
  if jax.process_index() == 0:
    probes.write_eval_json(workdir, results)
    value_map.write_value_map(workdir, view_embeddings, view_labels, results,
                              seed=config.views.seed)
  return results


def run(config: ml_collections.ConfigDict, workdir: str) -> None:
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  config = ml_collections.ConfigDict(config.to_dict())  # unlocked: steps may be resolved
  path = str(hub.resolve(config.encoder.path, config.encoder.get("revision") or None)
             if config.encoder.path else hf.minilm_path())
  length = view_length(config)
  module = hf.build_module(path, dtype=config.encoder.dtype,
                           param_dtype=config.encoder.param_dtype, remat=config.encoder.remat)
  if length > module.config.max_position_embeddings:
    raise ValueError(f"max_length={length} exceeds the encoder's "
                     f"{module.config.max_position_embeddings} positions ({path})")

  view_qas, train, test = prepare_qas(config)
  sampler = views_lib.ViewSampler(view_qas, config.train.batch_size, config.views.max_qas,
                                  seed=config.views.seed,
                                  align_questions=config.views.align_questions)
  config.train.steps = resolve_steps(config, len(view_qas))
  logging.info("UniVaR on %s: %d identities (%d trained on), %d train / %d test QAs, λ=%d, "
               "%d tokens per view, %d steps of %d identities x 2 views", config.data.source,
               len({qa.identity for qa in train}), len(sampler.identities), len(train),
               len(test), config.views.max_qas, length, config.train.steps,
               config.train.batch_size)

  raw_tokenizer = hf.load_tokenizer(path)
  tokenizer = encoder_lib.text_tokenizer(raw_tokenizer, length)
  pad_id = int(module.config.pad_token_id)
  mesh = loop.auto_mesh(parallel.make_mesh(tuple(config.mesh.shape)))
  init_params = models.make_init_fn(module)
  _, flops = metrics_lib.module_flops_per_token(module, init_params, length)
  result = loop.train(
      config, str(workdir), init_params=init_params,
      loss_fn=make_loss_fn(module, config.loss.logit_scale, config.loss.symmetric,
                           config.encoder.dropout),
      make_batches=make_batch_factory(sampler, tokenizer, length, pad_id,
                                      parallel.data_shard(mesh, config.mesh.get("rules"))),
      flops_per_token=flops,
      load_params=hf.params_loader(path, config.encoder.dtype, config.encoder.param_dtype,
                                   config.encoder.remat))
  summary = {"source": config.data.source, "encoder": path,
             "identities": len({qa.identity for qa in train}),
             "trained_identities": len(sampler.identities), "train_qas": len(train),
             "test_qas": len(test), "max_qas": config.views.max_qas, "max_length": length,
             "step": result.step, "preempted": result.preempted,
             "last_metrics": result.last_metrics}
  if not result.preempted:  # the untrained encoder is read only now, for its baseline
    base = hf.load(path, dtype=config.encoder.dtype, param_dtype=config.encoder.param_dtype,
                   remat=config.encoder.remat)
    summary["eval"] = evaluate(config, workdir, module, raw_tokenizer,
                               _host_params(result.state.params), _host_params(base.params),
                               train, test)
  if jax.process_index() == 0:
    files.write_json(workdir / SUMMARY_FILE, summary)
  logging.info("Done: %s", json.dumps(summary.get("eval", summary), indent=1))
