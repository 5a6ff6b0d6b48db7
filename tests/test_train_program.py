"""The train program is built from config + topology with abstract shapes only, and
compiles ahead of time; it is the program the loop runs."""

import jax
import numpy as np

import toy_models
from underrep_jax import parallel
from underrep_jax.train import loop
from underrep_jax.train import losses
from underrep_jax.train import program
from underrep_jax.train import state as state_lib

BATCH, LENGTH = 16, 16


def _build(shape, steps=4):
  model = toy_models.ToyDecoder(layers=2)
  config = toy_models.toy_config(steps=steps, batch_size=BATCH)
  return program.build(config, parallel.Topology.create(shape),
                       toy_models.init_fn(model, np.zeros((1, LENGTH), np.int32)),
                       losses.token_loss(losses.decoder_only_adapter(model)))


def _batch_shapes():
  example = toy_models.decoder_batch(0, BATCH)
  return {k: (v.shape, v.dtype) for k, v in example.items()}


def test_build_and_compile_allocate_no_parameters():
  before = {id(x) for x in jax.live_arrays()}
  train_program = _build((1, 8, 1))
  compiled = train_program.compile(train_program.abstract_batch(_batch_shapes()))
  # Shapes only: the one array made is the step's base dropout key (2 x uint32).
  new = [x for x in jax.live_arrays() if id(x) not in before]
  assert sum(x.nbytes for x in new) <= 8
  assert isinstance(train_program.abstract_state.params["Block_0"]["Dense_0"]["kernel"],
                    jax.ShapeDtypeStruct)
  assert compiled.memory_analysis() is not None


def test_fsdp_shards_the_state_in_the_compiled_step():
  """Arguments per device: the whole state on a pure data mesh, about 1/8 of the
  matrices with fsdp 8 (the batch is split either way)."""
  sizes = {}
  for shape in ((8, 1, 1), (1, 8, 1)):
    train_program = _build(shape)
    compiled = train_program.compile(train_program.abstract_batch(_batch_shapes()))
    sizes[shape] = compiled.memory_analysis().argument_size_in_bytes
  state_bytes = sum(x.size * x.dtype.itemsize
                    for x in jax.tree.leaves(_build((8, 1, 1)).abstract_state))
  assert sizes[(8, 1, 1)] >= state_bytes
  assert sizes[(1, 8, 1)] < sizes[(8, 1, 1)] / 2


def test_the_compiled_program_is_the_step_the_loop_runs(tmp_path):
  """Compiled ahead of time and run on real arrays, it gives the loop's first loss
  (exactly: the same program on the same inputs)."""
  train_program = _build((8, 1, 1), steps=1)
  batch = train_program.topology.to_global(toy_models.decoder_batch(0, BATCH))
  compiled = train_program.compile(batch)
  model = toy_models.ToyDecoder(layers=2)
  init = toy_models.init_fn(model, np.zeros((1, LENGTH), np.int32))
  initial = state_lib.create_state(init, train_program.tx, jax.random.PRNGKey(0),
                                   train_program.shardings)
  _, metrics = compiled(initial, batch)
  config = toy_models.toy_config(steps=1, batch_size=BATCH, checkpoint_every=0)
  ran = loop.train(config, str(tmp_path), init_params=init,
                   loss_fn=losses.token_loss(losses.decoder_only_adapter(model)),
                   make_batches=lambda start: toy_models.decoder_batches(BATCH, start),
                   topology=train_program.topology)
  assert float(metrics["loss"]) == ran.last_metrics["loss"]
