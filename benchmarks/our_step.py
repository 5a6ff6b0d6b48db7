"""Our side of the training benchmarks: the shared loop's jitted train step."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

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


def make_part_runners(module, params, loss_fn, batch: dict, optimizer_hparams: dict
                      ) -> dict[str, Callable[[], None]]:
  """The step's parts, each jitted alone on one device (params not donated): the loss
  (forward only), its gradient (forward and backward), and the optimizer's update (global
  norm clipping and the update, from fixed gradients). Where a step's time goes."""
  config = ml_collections.ConfigDict(dict(
      train=config_schema.train(), optimizer=config_schema.optimizer(**optimizer_hparams)))
  topology = parallel.Topology.create(devices=jax.devices()[:1])
  tx = program.build(config, topology, models.make_init_fn(module), loss_fn, 1000).tx
  batch = jax.tree.map(jnp.asarray, batch)
  rng = jax.random.PRNGKey(0)

  def mean_loss(p):
    loss_sum, weight = loss_fn(p, batch, rng)[:2]
    return loss_sum / weight

  forward, gradient = jax.jit(mean_loss), jax.jit(jax.grad(mean_loss))
  grads = jax.tree.map(lambda x: jnp.full_like(x, 1e-3), params)
  opt_state = tx.init(params)

  @jax.jit
  def update(p, s, g):
    updates, s = tx.update(g, s, p)
    return optax.apply_updates(p, updates), s

  return {"forward": lambda: jax.block_until_ready(forward(params)),
          "forward+backward": lambda: jax.block_until_ready(gradient(params)),
          "optimizer": lambda: jax.block_until_ready(update(params, opt_state, grads))}
