"""Job: UniVaR contrastive value embeddings (configs/univar.py).

Reads the QAs of every (LLM, language) identity, holds out a share of the questions,
trains a pretrained sentence encoder with InfoNCE on pairs of views of one identity
(the shared loop does sharding, checkpoints, resume and metrics), then evaluates
identity probes on single QAs and on views of m held-out QAs for the trained encoder,
the untrained one and TF-IDF, and draws the value map from the trained encoder's mean
view embeddings.
"""

from collections.abc import Callable
import dataclasses
import json
import math
import pathlib
from typing import Any

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from underrep_jax import errors
from underrep_jax import files
from underrep_jax import models
from underrep_jax import parallel
from underrep_jax.data.errors import DataError
from underrep_jax.models import hf
from underrep_jax.models import runtime
from underrep_jax.train import loop
from underrep_jax.train import losses
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
_NO_LIMIT = 1 << 30  # a tokenizer truncation length that never cuts


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

  Independent views (the original) train on every identity. Disjoint views need 2λ QAs
  per identity; smaller ones are then left out of training (with a warning) but still
  take part in the probes and the map.
  """
  qas = read_qas(config.data)
  if not qas:
    raise DataError(f"data.source={config.data.source!r}: no usable QAs")
  train, test = data_lib.split_qas(qas, config.data.test_fraction, config.data.split_seed,
                                   unit=config.data.split_unit)
  needed = views_lib.min_qas_for_training(int(config.views.max_qas), config.views.disjoint)
  view_qas, dropped = views_lib.drop_small_identities(train, needed)
  if dropped:
    logging.warning("Not training on %d identities with fewer than %d train QAs (2 disjoint "
                    "views of up to λ=%d); the probes and the map still include them: %s",
                    len(dropped), needed, config.views.max_qas, ", ".join(dropped))
  if not view_qas:
    raise DataError(f"data.source={config.data.source!r}: no identity has the {needed} "
                    f"train QAs that two disjoint views of up to λ={config.views.max_qas} "
                    "QAs need; lower --config.views.max_qas or set views.disjoint=False")
  with_train = {qa.identity for qa in train}
  test = [qa for qa in test if qa.identity in with_train]  # a probe cannot predict the rest
  return view_qas, train, test


def resolve_steps(config, num_train_qas: int) -> int:
  """train.steps, or `train.epochs` epochs as the original counts them when epochs > 0.

  The original's epoch is one pass over the QAs as anchors of a pair: floor(QAs /
  global batch) steps (its data loader drops the last partial batch), whatever λ is.
  """
  if config.train.epochs and config.train.epochs > 0:
    per_epoch = max(1, num_train_qas // int(config.train.batch_size))
    return max(1, math.ceil(config.train.epochs * per_epoch))
  return int(config.train.steps)


def make_loss_fn(module, logit_scale: float, symmetric: bool, dropout: bool,
                 mask_same_identity: bool):
  """InfoNCE on the global batch, in the loop's sum convention (weight = pairs);
  `mask_same_identity`: other rows of an anchor's identity are not its negatives."""

  def loss_fn(params, batch, rng):
    anchor_rng, positive_rng = jax.random.split(rng)
    anchors = encoder_lib.embed(module, params, batch["anchor_input_tokens"],
                                batch["anchor_mask"], deterministic=not dropout, rng=anchor_rng)
    positives = encoder_lib.embed(module, params, batch["positive_input_tokens"],
                                  batch["positive_mask"], deterministic=not dropout,
                                  rng=positive_rng)
    identities = batch["identity"] if mask_same_identity else None
    loss = loss_lib.info_nce(anchors, positives, logit_scale=logit_scale, symmetric=symmetric,
                             identities=identities)
    size = jnp.asarray(anchors.shape[0], jnp.float32)
    correct = loss_lib.pair_accuracy(anchors, positives, identities) * size  # summed, as loss
    return loss * size, size, {"pair_accuracy": correct}

  return loss_fn


@dataclasses.dataclass(frozen=True)
class TrainSpec:
  """What the training loop gets for a config, known before any data is read, so that
  `plan` compiles exactly the step `run` trains (`train.program.build`)."""
  module: nn.Module
  init_params: Callable[[jax.Array], Any]
  loss_fn: losses.LossFn
  params_count: int
  flops_per_token: float  # training FLOPs per token of one view
  length: int             # tokens per view
  batch_shapes: dict[str, tuple[tuple[int, ...], Any]]  # global batch: {name: (shape, dtype)}

  @property
  def tokens_per_step(self) -> int:
    """Positions one step embeds, two views of `length` tokens per pair: the loop's
    count (`metrics.count_tokens`: every `*input_tokens` feature)."""
    return sum(int(np.prod(shape)) for name, (shape, _) in self.batch_shapes.items()
               if name.endswith("input_tokens"))


def model_source(config) -> runtime.ModelSource:
  """The encoder of `config.model`: its `path`, or all-MiniLM-L6-v2 when it is empty."""
  source = runtime.ModelSource.from_config(config.model, default_path=hf.minilm_path())
  if source.kind != "encoder":
    raise errors.ConfigError(f"model.path={str(source.path)!r} is a {source.family} model; "
                             "UniVaR embeds with a BERT-family encoder")
  return source


def batch_shapes(batch_size: int, length: int) -> dict[str, tuple[tuple[int, ...], Any]]:
  """{name: (shape, dtype)} of a global batch of `batch_size` pairs of views of `length`
  tokens: what `make_batch_factory` yields, all hosts' rows together."""
  tokens = ((batch_size, length), np.int32)
  return {"anchor_input_tokens": tokens, "anchor_mask": tokens,
          "positive_input_tokens": tokens, "positive_mask": tokens,
          "identity": ((batch_size,), np.int32)}


def train_spec(config: ml_collections.ConfigDict, source: runtime.ModelSource) -> TrainSpec:
  """The module, init, InfoNCE loss, FLOPs per token and batch shapes of `config` on the
  encoder `source`, from its config.json alone (no weight, no data is read)."""
  length = view_length(config)
  module = source.module()
  positions = module.config.max_position_embeddings
  if length > positions:
    raise errors.ConfigError(
        f"max_length={length} (views.max_qas={config.views.max_qas}) exceeds the encoder's "
        f"{positions} positions ({source.path}); set --config.max_length, or "
        "--config.model.path to an encoder whose position table covers it")
  init_params = models.make_init_fn(module)
  params_count, flops = metrics_lib.module_flops_per_token(module, init_params, length)
  loss_fn = make_loss_fn(module, config.loss.logit_scale, config.loss.symmetric,
                         config.train.dropout, config.loss.mask_same_identity)
  return TrainSpec(module=module, init_params=init_params, loss_fn=loss_fn,
                   params_count=params_count, flops_per_token=flops, length=length,
                   batch_shapes=batch_shapes(int(config.train.batch_size), length))


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
             "positive_input_tokens": positive_ids, "positive_mask": positive_mask,
             "identity": batch.identity_ids}
      step += 1

  return make_batches


def _host_params(params):
  """Full numpy params on every host, so evaluation runs locally on each."""
  return jax.tree.map(parallel.global_to_host_local, params)


def _linear_kwargs(config) -> dict:
  probe = config.eval.linear
  return dict(learning_rate=probe.learning_rate, batch_size=probe.batch_size,
              epochs=probe.epochs)


def view_probe_length(config) -> int:
  """Tokens per view in the view-level probe: `eval.view_probe.max_length`, or the
  training views' length when it is <= 0."""
  length = int(config.eval.view_probe.max_length)
  return length if length > 0 else view_length(config)


def _truncated_share(raw_tokenizer, max_length: int):
  """texts -> the share that `max_length` tokens would cut (specials included)."""
  counter = encoder_lib.text_tokenizer(raw_tokenizer, _NO_LIMIT)

  def share(texts) -> float:
    return float(sum(len(e.ids) > max_length for e in counter.encode_batch(list(texts)))
                 / max(1, len(texts)))

  return share


def evaluate(config, workdir: pathlib.Path, module, tokenizer, pad_id: int, trained_params,
             base_params, train, test) -> dict:
  """Probes (trained, untrained, TF-IDF) on single QAs and on views of m QAs ->
  univar_eval.json; value map -> PNGs, CSV, report."""
  from underrep_jax.univar import value_map  # umap / matplotlib: slow to import
  single = encoder_lib.Embedder(module, tokenizer, config.eval.max_length,
                                config.eval.batch_size, pad_id)
  train_texts = [views_lib.render_qa(qa) for qa in train]
  test_texts = [views_lib.render_qa(qa) for qa in test]
  train_labels = [qa.identity for qa in train]
  test_labels = [qa.identity for qa in test]
  encoders = (("univar", trained_params), ("base", base_params))
  features = {}
  for name, params in encoders:
    features[name] = (single(params, train_texts, desc=f"{name} train QAs"),
                      single(params, test_texts, desc=f"{name} test QAs"))
  features["tfidf"] = probes.tfidf_features(train_texts, test_texts,
                                            max_features=config.eval.tfidf_max_features or None)
  probe_options = dict(k=config.eval.k, metric=config.eval.knn_metric, seed=config.eval.seed,
                       **_linear_kwargs(config))
  results = probes.evaluate(features, train_labels, test_labels, **probe_options)

  view_probe = config.eval.view_probe
  if view_probe.qas_per_view:
    length = view_probe_length(config)
    embed = encoder_lib.Embedder(module, tokenizer, length, config.eval.batch_size, pad_id)
    embedders = {name: (lambda texts, p=params, n=name: embed(p, texts, desc=f"{n} views"))
                 for name, params in encoders}
    results[value_map.VIEW_PROBE] = probes.view_level_probe(
        train, test, embedders, qas_per_view=tuple(view_probe.qas_per_view),
        train_views=view_probe.train_views, test_views=view_probe.test_views,
        tfidf_max_features=config.eval.tfidf_max_features or None,
        truncated_share=_truncated_share(tokenizer, length), **probe_options)
    results[value_map.VIEW_PROBE]["max_length"] = length

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


def probe_hook(config, module, tokenizer, pad_id: int, train, test) -> loop.Hook:
  """A k-NN identity probe of the encoder being trained, every `eval.probe_every` steps,
  on at most `eval.probe_examples` train and test QAs, evenly spaced over the lists so
  every identity keeps its share (a fixed subset: the curve compares like with like);
  logged as probe/knn_acc and probe/knn_weighted_f1."""
  limit = int(config.eval.probe_examples)
  train = train[::max(1, len(train) // limit)][:limit]
  test = test[::max(1, len(test) // limit)][:limit]
  embedder = encoder_lib.Embedder(module, tokenizer, config.eval.max_length,
                                  config.eval.batch_size, pad_id)
  train_texts = [views_lib.render_qa(qa) for qa in train]
  test_texts = [views_lib.render_qa(qa) for qa in test]

  def probe(context: loop.HookContext) -> dict[str, float]:
    params = _host_params(context.state.params)
    return probes.knn_probe(embedder(params, train_texts, desc="probe train QAs"),
                            [qa.identity for qa in train],
                            embedder(params, test_texts, desc="probe test QAs"),
                            [qa.identity for qa in test], k=config.eval.k,
                            metric=config.eval.knn_metric)

  return loop.Hook(probe, every_n_steps=int(config.eval.probe_every), name="probe")


def run(config: ml_collections.ConfigDict, workdir: str) -> None:
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  source = model_source(config)
  topology = parallel.Topology.from_config(config.mesh)
  spec = train_spec(config, source)
  module, length = spec.module, spec.length

  view_qas, train, test = prepare_qas(config)
  sampler = views_lib.ViewSampler(view_qas, config.train.batch_size, config.views.max_qas,
                                  seed=config.views.seed, sampling=config.views.sampling,
                                  disjoint_views=config.views.disjoint,
                                  align_questions=config.views.align_questions)
  steps = resolve_steps(config, len(view_qas))
  logging.info("UniVaR on %s: %d identities (%d trained on), %d train / %d test QAs, λ=%d, "
               "%d tokens per view, %d steps of %d pairs (%s sampling, %s views)",
               config.data.source, len({qa.identity for qa in train}), len(sampler.identities),
               len(train), len(test), config.views.max_qas, length, steps,
               config.train.batch_size, config.views.sampling,
               "disjoint" if config.views.disjoint else "independent")
  if steps <= config.optimizer.warmup_steps:
    logging.warning("%d steps end within the %d warmup steps: the lr never reaches its peak",
                    steps, config.optimizer.warmup_steps)

  raw_tokenizer = source.tokenizer()
  tokenizer = encoder_lib.text_tokenizer(raw_tokenizer, length)
  pad_id = source.special_ids().pad
  hooks = ([probe_hook(config, module, raw_tokenizer, pad_id, train, test)]
           if config.eval.probe_every else [])
  result = loop.train(
      config, str(workdir), init_params=spec.init_params, loss_fn=spec.loss_fn,
      make_batches=make_batch_factory(sampler, tokenizer, length, pad_id,
                                      topology.data_shard()),
      topology=topology, steps=steps, flops_per_token=spec.flops_per_token,
      load_params=source.params_loader(), hooks=hooks)
  summary = {"source": config.data.source, "encoder": str(source.path),
             "identities": len({qa.identity for qa in train}),
             "trained_identities": len(sampler.identities), "train_qas": len(train),
             "test_qas": len(test), "max_qas": config.views.max_qas, "max_length": length,
             "step": result.step, "preempted": result.preempted,
             "last_metrics": result.last_metrics}
  if not result.preempted:  # the untrained encoder is read only now, for its baseline
    base = source.load()
    summary["eval"] = evaluate(config, workdir, module, raw_tokenizer, pad_id,
                               _host_params(result.state.params), _host_params(base.params),
                               train, test)
  if jax.process_index() == 0:
    files.write_json(workdir / SUMMARY_FILE, summary)
  logging.info("Done: %s", json.dumps(summary.get("eval", summary), indent=1))
