"""Job: instruction tuning on any registered SeqIO task or mixture (configs/instruct.py).

`config.task_modules` are imported first (they register the user's tasks, as T5X's
MIXTURE_OR_TASK_MODULE), then `config.data.mixture` is looked up, replay mixed in if
asked, and `train_on_mixture` trains: it binds the vocabulary, builds or loads the model
and hands the shared training loop a token loss and a batch factory (sharding,
checkpoints, resume and metrics are the loop's), then exports in the Hugging Face layout.
InstructAlign (jobs/instructalign.py) is this job plus its choice of mixture.
"""

from collections.abc import Callable
import dataclasses
import pathlib
import shutil
from typing import Any

from absl import logging
import flax.linen as nn
import jax
import ml_collections
import seqio

import tasks
from underrep_jax import errors
from underrep_jax import files
from underrep_jax import models
from underrep_jax import parallel
from underrep_jax.data import corpus_vocab
from underrep_jax.data import eval_tasks
from underrep_jax.data import input_pipeline
from underrep_jax.data import vocabularies
from underrep_jax.evaluation import in_training
from underrep_jax.models import hf
from underrep_jax.models import runtime
from underrep_jax.train import loop
from underrep_jax.train import losses
from underrep_jax.train import metrics as metrics_lib

SUMMARY_FILE = "instruct_summary.json"


def with_replay(data: ml_collections.ConfigDict, mixture: str, architecture: str) -> str:
  """`mixture` with `data.replay` mixed in (if asked); decoder-only models read a file
  source's inputs and targets as one text joined by a space (xP3's format)."""
  if not data.replay:
    return mixture
  separator = (tasks.replay.DECODER_SEPARATOR if architecture == input_pipeline.DECODER_ONLY
               else "")
  return tasks.replay.with_replay(mixture, data.replay, num_examples=data.replay_examples or None,
                                  rate=data.replay_rate or None, seed=data.seed,
                                  separator=separator)


def architecture_of(source: runtime.ModelSource) -> str:
  """The input pipeline's layout: the family's kind (`input_pipeline.DECODER_ONLY` or
  `ENCODER_DECODER` name the same two kinds)."""
  if source.kind not in (input_pipeline.DECODER_ONLY, input_pipeline.ENCODER_DECODER):
    raise errors.ConfigError(f"model: a {source.family} model is an {source.kind}; "
                             "instruction tuning needs a decoder or an encoder-decoder")
  return source.kind


def _vocabulary(config, source: runtime.ModelSource, mixture: str, workdir: pathlib.Path):
  spec = config.data.vocab
  if spec == "model":
    if source.path is None:
      raise ValueError("config.data.vocab='model' needs config.model.path; from-scratch "
                       "models use vocab='sentencepiece'")
    spec = str(source.path)
  return corpus_vocab.resolve(spec, mixture, workdir / "vocab", config.data.vocab_size)


def make_adapter(config, module, architecture: str) -> losses.Adapter:
  """The logits the loss trains: causal for decoder-only models unless train.prefix_lm."""
  if architecture == input_pipeline.ENCODER_DECODER:
    return losses.encoder_decoder_adapter(module)
  return losses.decoder_only_adapter(module, prefix_lm=config.train.prefix_lm)


def scratch_vocab_size(config) -> int | None:
  """The vocabulary size a from-scratch model gets from `config.data`, without reading
  data or training anything: `data.vocab_size` for SentencePiece (an upper bound: small
  corpora get fewer pieces), the byte vocabulary's size, or a tokenizer file's size.
  None for `vocab=model` (the checkpoint's config.json has it)."""
  spec = config.data.vocab
  if spec == "model":
    return None
  if spec == "sentencepiece":
    return int(config.data.vocab_size)
  if spec == "bytes":
    return seqio.ByteVocabulary().vocab_size
  return vocabularies.load(spec).vocab_size


@dataclasses.dataclass(frozen=True)
class TrainSpec:
  """What the training loop gets for a config, known before any data is read, so that
  `plan` compiles exactly the step `train_on_mixture` runs."""
  module: nn.Module
  init_params: Callable[[jax.Array], Any]
  loss_fn: losses.LossFn
  params_count: int
  flops_per_token: float
  input_config: input_pipeline.InputConfig
  batch_shapes: dict[str, tuple[tuple[int, ...], Any]]  # global batch: {name: (shape, dtype)}


def train_spec(config: ml_collections.ConfigDict, source: runtime.ModelSource,
               mixture: str = "", vocab_size: int | None = None) -> TrainSpec:
  """The module, init, loss, FLOPs per token and batch features of `config` on `source`.

  `vocab_size` is the job's vocabulary (default: `scratch_vocab_size`); `mixture` only
  names what the batches will be read from.
  """
  if vocab_size is None:
    vocab_size = scratch_vocab_size(config)
  module = source.module(vocab_size=vocab_size)
  architecture = architecture_of(source)
  input_config = input_pipeline.InputConfig(
      mixture=mixture, split=config.data.split, inputs_length=config.data.inputs_length,
      targets_length=config.data.targets_length, global_batch_size=config.train.batch_size,
      architecture=architecture, pack=config.data.pack, loss_on=config.train.loss_on,
      seed=config.data.seed, max_length=config.data.max_length,
      prefix_lm=config.train.prefix_lm)
  loss_fn = losses.token_loss(make_adapter(config, module, architecture),
                              loss_on=config.train.loss_on)
  init_params = models.make_init_fn(module)
  params_count, flops = metrics_lib.module_flops_per_token(
      module, init_params, input_pipeline.sequence_length(input_config))
  return TrainSpec(module=module, init_params=init_params, loss_fn=loss_fn,
                   params_count=params_count, flops_per_token=flops,
                   input_config=input_config,
                   batch_shapes=input_pipeline.batch_spec(input_config))


def run(config: ml_collections.ConfigDict, workdir: str) -> None:
  pathlib.Path(workdir).mkdir(parents=True, exist_ok=True)
  source = runtime.ModelSource.from_config(config.model)
  tasks.registry.import_modules(config.task_modules)
  named = tasks.registry.require(config.data.mixture, "config.data.mixture")
  mixture = with_replay(config.data, named, architecture_of(source))
  train_on_mixture(config, workdir, mixture, source, heldout_mixture=named)


def train_on_mixture(config: ml_collections.ConfigDict, workdir: str, mixture: str,
                     source: runtime.ModelSource, summary_file: str = SUMMARY_FILE,
                     heldout_mixture: str | None = None,
                     eval_languages: list[str] | None = None) -> dict:
  """Trains the model of `source` on the registered `mixture`, writes
  WORKDIR/<summary_file> and, with config.export, WORKDIR/export; returns the summary.

  With `config.eval.every`, evaluates while training: classification tasks in
  `config.eval.languages` (default `eval_languages`, else all) and the loss on held-out
  batches of `heldout_mixture` (the mixture before replay).
  """
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  topology = parallel.Topology.from_config(config.mesh)
  vocab = _vocabulary(config, source, mixture, workdir)
  vocabularies.set_active(vocab)
  spec = train_spec(config, source, mixture, vocab_size=vocab.vocab_size)
  module = spec.module
  logging.info("Training on %s (%s, loss on %s, %s attention), vocabulary %r", mixture,
               source.family, config.train.loss_on,
               "prefix-LM" if config.train.prefix_lm else "causal", vocab)
  shard = topology.data_shard()  # hosts of one model replica read the same rows

  def make_batches(start: int):
    return input_pipeline.batches(spec.input_config, start, *shard)

  hooks = []
  if config.export and config.export_every:  # an evaluable model while training runs

    def export_hook(context: loop.HookContext) -> None:
      export(source, module, context.state.params, vocab, workdir / "export")
      context.writer.message(f"step {context.step}: exported to {workdir / 'export'}")

    hooks.append(loop.Hook(export_hook, every_n_steps=int(config.export_every),
                           name="export"))
  if config.eval.every:
    hooks.append(loop.Hook(
        eval_hook_fn(config, spec, source, vocab, topology, heldout_mixture or mixture,
                     eval_languages),
        every_n_steps=int(config.eval.every), at_end=True, name="eval"))
  result = loop.train(config, str(workdir), init_params=spec.init_params,
                      loss_fn=spec.loss_fn, make_batches=make_batches, topology=topology,
                      flops_per_token=spec.flops_per_token,
                      load_params=source.params_loader() if source.path else None,
                      hooks=hooks)
  summary = {"mixture": mixture, "family": source.family,
             "parameters": int(spec.params_count), "loss_on": config.train.loss_on,
             "prefix_lm": bool(config.train.prefix_lm),
             "max_length": input_pipeline.sequence_length(spec.input_config),
             "step": result.step, "preempted": result.preempted,
             "last_metrics": result.last_metrics}
  if config.export and not result.preempted:
    summary["export"] = str(export(source, module, result.state.params, vocab,
                                   workdir / "export"))
  files.write_json(workdir / summary_file, summary)
  logging.info("Done: %s", summary)
  return summary


def eval_hook_fn(config, spec: TrainSpec, source: runtime.ModelSource, vocab,
                 topology: parallel.Topology, heldout_mixture: str,
                 default_languages: list[str] | None):
  """The `eval` hook's function: its tasks and held-out batches are read once, here."""
  evaluation = config.eval
  wanted = tasks.registry.split_names(evaluation.languages) or default_languages or []
  named = [(name, task) for name in tasks.registry.split_names(evaluation.tasks)
           for task in tasks.registry.tasks_of(name, "config.eval.tasks")
           if isinstance(task, eval_tasks.ClassificationTask)
           and (not wanted or task.language in wanted)]
  if tasks.registry.split_names(evaluation.tasks) and not named:
    raise errors.ConfigError(f"config.eval.tasks={evaluation.tasks!r} has no classification "
                             f"task in the languages {', '.join(wanted)}")
  sets = in_training.classification_sets(named, evaluation.split, evaluation.max_examples,
                                         tasks.registry.split_names(evaluation.prompt_languages))
  heldout = []
  if evaluation.heldout_batches:
    heldout_config = dataclasses.replace(spec.input_config, mixture=heldout_mixture,
                                         split=evaluation.split)
    try:
      for batch in input_pipeline.batches(heldout_config, 0, *topology.data_shard(),
                                          num_epochs=1):
        heldout.append(batch)
        if len(heldout) == evaluation.heldout_batches:
          break
    except (ValueError, KeyError) as e:
      raise errors.ConfigError(f"config.eval.heldout_batches: {heldout_mixture} has no "
                               f"usable {evaluation.split!r} split ({e}); set "
                               "--config.eval.heldout_batches=0") from None
    if not heldout:
      raise errors.ConfigError(f"config.eval.heldout_batches: {heldout_mixture}'s "
                               f"{evaluation.split!r} split fills no batch of "
                               f"{spec.input_config.global_batch_size}")
  return in_training.hook_fn(
      module=spec.module, vocabulary=vocab, topology=topology, sets=sets,
      batch_size=evaluation.batch_size, max_prompt_tokens=evaluation.max_prompt_tokens,
      loss_fn=spec.loss_fn, heldout_batches=heldout,
      hf_config=hf.read_config(source.path) if source.path else None)


def export(source: runtime.ModelSource, module, params, vocab,
           out_dir: pathlib.Path) -> pathlib.Path:
  """Writes the trained model in the Hugging Face layout, tokenizer included.

  Every process calls it (the sharded params are gathered collectively); process 0
  writes the files.
  """
  writer = jax.process_index() == 0
  like = None
  if source.path:  # carry the checkpoint's config.json fields and tokenizer files
    like = hf.PretrainedModel(family=source.family, config=module.config, module=module,
                              params=None, hf_config=hf.read_config(source.path),
                              source=source.path)
  model = hf.from_params(module, nn.unbox(params), like=like)
  if not source.path:  # ids of the SentencePiece vocabulary trained for this run
    model.hf_config.update(bos_token_id=vocab.eos_id, eos_token_id=vocab.eos_id,
                           pad_token_id=vocab.pad_id, unk_token_id=vocab.unk_id)
  # Written beside the final place and renamed into it, so a kill or a full disk never
  # leaves a half-written export that an evaluation would read as a model.
  partial = out_dir.with_name(out_dir.name + ".partial")
  if writer:
    shutil.rmtree(partial, ignore_errors=True)
  hf.save(model, partial)
  if not writer:
    return out_dir
  if not source.path and isinstance(vocab, seqio.SentencePieceVocabulary):
    vocabularies.sentencepiece_to_hf(vocab, partial)  # (a checkpoint's own files are copied)
  previous = out_dir.with_name(out_dir.name + ".previous")
  shutil.rmtree(previous, ignore_errors=True)
  if out_dir.exists():
    out_dir.rename(previous)
  partial.rename(out_dir)
  shutil.rmtree(previous, ignore_errors=True)
  return out_dir
