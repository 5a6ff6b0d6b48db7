"""Our side of the training benchmarks: the shared loop's jitted train step."""

from collections.abc import Callable

import ml_collections

from underrep_jax import config_schema
from underrep_jax import models
from underrep_jax import parallel
from underrep_jax.train import program
from underrep_jax.train import state as state_lib


def make_runner(module, params, loss_fn, batch: dict, optimizer_hparams: dict,
                devices=None) -> Callable[[], float]:
  """A call runs one train step (state donated, as in training) and returns its loss;
  on `devices` (default: all), data-parallel."""
  config = ml_collections.ConfigDict(dict(
      train=config_schema.train(), optimizer=config_schema.optimizer(**optimizer_hparams)))
  topology = parallel.Topology.create(devices=devices)
  train_program = program.build(config, topology, models.make_init_fn(module), loss_fn, 1000)
  state = state_lib.state_from_params(params, train_program.tx, train_program.shardings)
  train_step = train_program.step
  global_batch = topology.to_global(batch)

  def run() -> float:
    nonlocal state
    state, metrics = train_step(state, global_batch)
    return float(metrics["loss"])

  return run
