"""Our side of the training benchmarks: the shared loop's jitted train step."""

from collections.abc import Callable

import ml_collections

from underrep_jax import models
from underrep_jax import parallel
from underrep_jax.train import loop
from underrep_jax.train import optimizer
from underrep_jax.train import state as state_lib
from underrep_jax.train import steps


def make_runner(module, params, loss_fn, batch: dict, optimizer_hparams: dict
                ) -> Callable[[], float]:
  """A call runs one train step (state donated, as in training) and returns its loss."""
  mesh = loop.auto_mesh(parallel.make_mesh((-1, 1, 1)))
  tx, schedule = optimizer.make_optimizer(ml_collections.ConfigDict(optimizer_hparams), 1000)
  _, shardings = state_lib.state_shardings(models.make_init_fn(module), tx, mesh)
  state = state_lib.state_from_params(params, tx, shardings)
  train_step = steps.make_train_step(loss_fn, tx, schedule, shardings, mesh)
  global_batch = parallel.host_local_to_global(batch, mesh)

  def run() -> float:
    nonlocal state
    state, metrics = train_step(state, global_batch)
    return float(metrics["loss"])

  return run
