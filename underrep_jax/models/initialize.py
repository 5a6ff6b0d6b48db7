"""Parameter and KV-cache initialisation, directly into the target shardings.

The init is traced once with `jax.eval_shape`; the logical axis names on the boxed
parameters give their shardings through the rules, and a jitted init writes each shard
on its device, so no host ever holds the full unsharded model.
"""

from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import SingleDeviceSharding

from underrep_jax import parallel
from underrep_jax.models import registry



def example_inputs(module: nn.Module, batch_size: int = 1, length: int = 8) -> dict[str, jax.Array]:
  """Dummy keyword inputs with the right names for `module.init`."""
  tokens = jnp.zeros((batch_size, length), jnp.int32)
  if registry.family_of(module).kind == "encoder_decoder":
    return {"encoder_input_tokens": tokens, "decoder_input_tokens": tokens}
  return {"input_ids": tokens}


def make_init_fn(module: nn.Module, example_batch: Mapping[str, Any] | None = None
                 ) -> Callable[[jax.Array], Any]:
  """`init(rng) -> params` with leaves boxed by their logical axis names.

  This is the shape `train.state.param_shardings` / `create_state` take.
  `example_batch` holds keyword inputs of the module (default: `example_inputs`).
  """
  inputs = dict(example_batch) if example_batch is not None else example_inputs(module)

  def init(rng):
    return module.init({"params": rng, "dropout": rng}, **inputs)["params"]

  return init


def param_shardings(module: nn.Module, topology: parallel.Topology | None = None,
                    example_batch: Mapping[str, Any] | None = None):
  """(boxed abstract params, NamedShardings) on `topology`; single-device without one."""
  abstract = jax.eval_shape(make_init_fn(module, example_batch), jax.random.PRNGKey(0))
  if topology is None:
    device = SingleDeviceSharding(jax.devices()[0])
    return abstract, jax.tree.map(lambda _: device, nn.unbox(abstract))
  return abstract, topology.shardings_of(nn.get_partition_spec(abstract))


def abstract_params(module: nn.Module, topology: parallel.Topology):
  """Unboxed parameters as ShapeDtypeStructs in their shardings on `topology`: what a
  step is lowered with ahead of time (`plan`), no parameter memory."""
  abstract, shardings = param_shardings(module, topology)
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                      nn.unbox(abstract), shardings)


def init_params(module: nn.Module, topology: parallel.Topology | None = None,
                rng: jax.Array | None = None, example_batch: Mapping[str, Any] | None = None):
  """Fresh, unboxed parameters, each created directly in its sharding."""
  rng = jax.random.PRNGKey(0) if rng is None else rng
  init = make_init_fn(module, example_batch)
  _, shardings = param_shardings(module, topology, example_batch)
  return jax.jit(lambda r: nn.unbox(init(r)), out_shardings=shardings)(rng)


def init_cache(module: nn.Module, batch_size: int, max_length: int,
               encoder_length: int = 1):
  """An empty KV cache for decoding up to `max_length` tokens (zeros, default device).

  Decode with `module.apply({'params': p, 'cache': c}, tokens, attention_mask=...,
  decode=True, mutable=['cache'])`; for T5 call `method=module.decode` with the
  encoder output. The cache length is the `max_length` given here.
  """
  tokens = jnp.zeros((batch_size, max_length), jnp.int32)
  if registry.family_of(module).kind == "encoder_decoder":
    inputs = {"encoder_input_tokens": jnp.zeros((batch_size, encoder_length), jnp.int32),
              "decoder_input_tokens": tokens}
  else:
    inputs = {"input_ids": tokens}
  shapes = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), decode=True, **inputs))
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), nn.unbox(shapes["cache"]))
