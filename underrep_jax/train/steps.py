"""The jitted train step: loss, gradients (optionally over microbatches), one update.

Gradient accumulation happens inside the step (a `lax.scan` over microbatches) rather
than with `optax.MultiSteps`: one call is one optimizer update, so `state.step`, the
schedule, checkpoints and the data position all count the same thing; the accumulator
is a transient buffer of the scan instead of an extra param-sized slot saved in every
checkpoint; and gradients are normalised once by the total loss weight, which makes M
microbatches give the same update as one batch of M times the size.
"""

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from underrep_jax import parallel
from underrep_jax.train import losses
from underrep_jax.train import state as state_lib


def _split_microbatches(batch, microbatches: int, mesh: Mesh, rules):
  """[B, ...] -> [M, B/M, ...] where microbatch m holds rows m, m+M, m+2M, ...

  Taking strided rows keeps every device's rows on that device (each microbatch takes
  B/(M*devices) rows from every data shard), so the split moves no data.
  """
  batch_axes = tuple(parallel.logical_to_pspec(("batch",), rules))

  def split(x):
    if x.shape[0] % microbatches:
      raise ValueError(f"batch size {x.shape[0]} is not divisible by {microbatches} microbatches")
    x = x.reshape((x.shape[0] // microbatches, microbatches) + x.shape[1:]).swapaxes(0, 1)
    sharding = NamedSharding(mesh, PartitionSpec(None, *batch_axes))
    return jax.lax.with_sharding_constraint(x, sharding)

  return jax.tree.map(split, batch)


def _safe_divide(x, weight):
  return x / jnp.where(weight > 0, weight, 1.0)


def make_train_step(loss_fn: losses.LossFn, tx: optax.GradientTransformation,
                    schedule: optax.Schedule, state_shardings: state_lib.TrainState,
                    mesh: Mesh, rules=None, microbatches: int = 1,
                    seed: int = 0) -> Callable:
  """Returns `step(state, batch) -> (state, metrics)`, jitted; the input state is donated.

  `mesh` must have Auto axis types (see `parallel.auto_mesh`; `parallel.Topology` makes them).
  The batch is a dict of global arrays sharded over the batch axes. The dropout rng of
  each step is derived from `seed` and `state.step`, so a resumed run draws the same
  numbers. Metrics are replicated scalars: loss, the loss function's metrics (divided by
  the weight), weight (e.g. target tokens), grad_norm (before clipping), learning_rate
  (used by this update).
  """
  rules = parallel.normalize_rules(rules)
  base_rng = jax.random.fold_in(jax.random.PRNGKey(seed), 1)

  def grads_and_sums(params, batch, rng):
    def objective(p):
      loss_sum, weight, metrics = loss_fn(p, batch, rng)
      return loss_sum, (weight, metrics)
    (loss_sum, (weight, metrics)), grads = jax.value_and_grad(objective, has_aux=True)(params)
    return state_lib.to_float32(grads), loss_sum, weight, metrics

  def accumulate(params, batch, rng):
    if microbatches == 1:
      return grads_and_sums(params, batch, rng)
    micro = _split_microbatches(batch, microbatches, mesh, rules)

    def body(carry, inputs):
      index, mb = inputs
      out = grads_and_sums(params, mb, jax.random.fold_in(rng, index))
      return jax.tree.map(jnp.add, carry, out), None

    first = jax.tree.map(lambda x: x[0], micro)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, jnp.float32),
                         jax.eval_shape(grads_and_sums, params, first, rng))
    total, _ = jax.lax.scan(body, zeros, (jnp.arange(microbatches), micro))
    return total

  def step(state, batch):
    rng = jax.random.fold_in(base_rng, state.step)
    grads, loss_sum, weight, sums = accumulate(state.params, batch, rng)
    grads = jax.tree.map(lambda g: _safe_divide(g, weight), grads)
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = tx.update(grads, state.opt_state, state_lib.to_float32(state.params))
    params = optax.apply_updates(state.params, updates)
    metrics = {k: _safe_divide(v, weight) for k, v in sums.items()}
    metrics.update(loss=_safe_divide(loss_sum, weight), weight=weight, grad_norm=grad_norm,
                   learning_rate=jnp.asarray(schedule(state.step), jnp.float32))
    new_state = state_lib.TrainState(step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, metrics

  replicated = NamedSharding(mesh, PartitionSpec())
  data_sharding = parallel.batch_sharding(mesh, rules, ndim=1)
  jitted = jax.jit(step, in_shardings=(state_shardings, data_sharding),
                   out_shardings=(state_shardings, replicated), donate_argnums=(0,))

  def run(state, batch):
    # Tracing happens on the first call: models' nn.with_logical_constraint calls need
    # the mesh and the rules in context then.
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
      return jitted(state, batch)

  run.jitted = jitted
  return run
