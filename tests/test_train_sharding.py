"""The jitted train step gives the same losses and params on every mesh (8 CPU devices)."""

import jax
import numpy as np
import pytest

import toy_models
from tolerances import float32_tol  # tests/tolerances.py
from underrep_jax import parallel
from underrep_jax.train import losses
from underrep_jax.train import program
from underrep_jax.train import state as state_lib

STEPS = 3
BATCH = 16


def _program(topology, model, microbatches=1):
  """The loop's train program of the toy decoder on `topology` (`program.build`)."""
  config = toy_models.toy_config(steps=STEPS, batch_size=BATCH, microbatches=microbatches)
  init = toy_models.init_fn(model, np.zeros((1, 16), np.int32))
  return program.build(config, topology, init,
                       losses.token_loss(losses.decoder_only_adapter(model)))


def _run(topology, initial, model, microbatches=1):
  """STEPS updates from the same initial state on `topology`: ([loss, grad norm] per step,
  params).

  Every step is one compiled function; microbatches=2 also checks that accumulation gives
  the update of the whole batch.
  """
  train_program = _program(topology, model, microbatches)
  state = jax.device_put(initial, train_program.shardings)
  out = []
  for i in range(STEPS):
    batch = topology.to_global(toy_models.decoder_batch(i, BATCH))
    state, metrics = train_program.step(state, batch)
    out.append((float(metrics["loss"]), float(metrics["grad_norm"])))
  return np.array(out), jax.tree.map(np.asarray, state.params)


@pytest.fixture(scope="module")
def reference():
  """One device: the initial state, and what STEPS updates do to it."""
  model = toy_models.ToyDecoder(layers=1)
  topology = parallel.Topology.create((1, 1, 1), devices=jax.devices()[:1])
  train_program = _program(topology, model)
  params = toy_models.numpy_params(model, np.zeros((1, 16), np.int32))
  initial = jax.tree.map(np.asarray, state_lib.state_from_params(
      params, train_program.tx, train_program.shardings))
  metrics, params = _run(topology, initial, model)
  return model, initial, metrics, params


@pytest.mark.parametrize("shape,microbatches", [((8, 1, 1), 1), ((2, 4, 1), 1), ((2, 2, 2), 2)])
def test_same_losses_on_every_mesh(reference, shape, microbatches):
  model, initial, ref_metrics, ref_params = reference
  metrics, params = _run(parallel.Topology.create(shape), initial, model, microbatches)
  # Loss and grad norm reduce over 256 tokens; by step 3 through 3 forward+backward passes
  # of the 2-deep model (depth 6): 1.1e-4 relative. Unsynchronised or mis-weighted
  # microbatch gradients change the grad norm by O(1).
  np.testing.assert_allclose(metrics, ref_metrics, rtol=float32_tol(16 * BATCH, depth=6))
  toy_models.assert_params_close(toy_models.flat_params(params), toy_models.flat_params(ref_params))
  assert ref_metrics[-1, 0] < ref_metrics[0, 0]  # it learns


def test_params_and_optimizer_state_are_sharded_by_logical_names():
  model = toy_models.ToyDecoder()
  shardings = _program(parallel.Topology.create((2, 2, 2)), model).shardings
  mlp_in = shardings.params["Block_0"]["Dense_0"]["kernel"]
  assert tuple(mlp_in.spec) == ("fsdp", "tensor")  # ('embed', 'mlp')
  adam = [s for s in jax.tree.leaves(shardings.opt_state, is_leaf=lambda x: hasattr(x, "mu"))
          if hasattr(s, "mu")][0]
  assert adam.mu["Block_0"]["Dense_0"]["kernel"] == mlp_in
  assert adam.nu["Block_0"]["Dense_0"]["kernel"] == mlp_in
  assert tuple(adam.count.spec) == ()
