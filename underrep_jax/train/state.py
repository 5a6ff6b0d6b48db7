"""The train state pytree and its sharded creation.

Parameters come from an `init_params(rng)` function whose leaves may be boxed with logical
axis names (`nn.with_logical_partitioning`); the boxes only decide shardings and are
removed from the state. Params keep the dtype the model declares (its param_dtype); the
optimizer state is always float32, whatever the params are.
"""

from collections.abc import Callable
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from underrep_jax import parallel


@flax.struct.dataclass
class TrainState:
  """Everything a step changes. `step` counts optimizer updates."""
  step: jax.Array
  params: Any
  opt_state: Any


def to_float32(tree):
  return jax.tree.map(lambda x: x.astype(jnp.float32) if jnp.issubdtype(x.dtype, jnp.floating)
                      else x, tree)


def init_opt_state(tx: optax.GradientTransformation, params):
  """float32 optimizer state, also for bfloat16 params."""
  return tx.init(to_float32(params))


def param_shardings(init_params: Callable[[jax.Array], Any], mesh: Mesh, rules=None):
  """(abstract unboxed params, their NamedShardings) from the logical names in the init."""
  boxed = jax.eval_shape(init_params, jax.random.PRNGKey(0))
  specs = nn.get_partition_spec(boxed)
  return nn.unbox(boxed), parallel.logical_to_sharding(specs, mesh, rules)


def state_shardings(init_params: Callable[[jax.Array], Any], tx: optax.GradientTransformation,
                    mesh: Mesh, rules=None) -> tuple[TrainState, TrainState]:
  """(abstract state with shardings attached, state shardings).

  Optimizer slots shaped like the params (Adam moments) take the params' shardings;
  everything else in the optimizer state (counters) is replicated.
  """
  abstract_params, p_shardings = param_shardings(init_params, mesh, rules)
  abstract_opt = jax.eval_shape(lambda p: init_opt_state(tx, p), abstract_params)
  replicated = NamedSharding(mesh, PartitionSpec())
  opt_shardings = optax.tree_map_params(
      tx, lambda _, s: s, abstract_opt, p_shardings,
      transform_non_params=lambda x: jax.tree.map(lambda _: replicated, x))
  shardings = TrainState(step=replicated, params=p_shardings, opt_state=opt_shardings)
  abstract = TrainState(step=jax.ShapeDtypeStruct((), jnp.int32), params=abstract_params,
                        opt_state=abstract_opt)
  abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                          abstract, shardings)
  return abstract, shardings


def create_state(init_params: Callable[[jax.Array], Any], tx: optax.GradientTransformation,
                 rng: jax.Array, shardings: TrainState) -> TrainState:
  """Initialises params and optimizer state directly in their shardings (no host copy)."""

  def init(rng):
    params = nn.unbox(init_params(rng))
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=init_opt_state(tx, params))

  return jax.jit(init, out_shardings=shardings)(rng)


def state_from_params(params, tx: optax.GradientTransformation,
                      shardings: TrainState) -> TrainState:
  """A fresh state around given (e.g. pretrained) params, placed in `shardings`.

  The params are donated: a big model is not held twice.
  """

  def init(params):
    params = nn.unbox(params)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=init_opt_state(tx, params))

  return jax.jit(init, in_shardings=(shardings.params,), out_shardings=shardings,
                 donate_argnums=(0,))(params)
