"""The train state, its shardings and the jitted step, built by one function from the
config and the topology, with abstract shapes only.

`build` traces the parameter init with `jax.eval_shape` and allocates nothing, so the
same program that `train.loop` runs can be lowered and compiled ahead of time for any
topology, a TPU slice or a GPU node described on a CPU host included
(`TrainProgram.compile`), to read its memory and FLOPs before any weight exists.
"""

from collections.abc import Callable, Mapping
import dataclasses
from typing import Any

import flax.linen as nn
import jax
import numpy as np
import optax

from underrep_jax import parallel
from underrep_jax.train import losses
from underrep_jax.train import optimizer as optimizer_lib
from underrep_jax.train import state as state_lib
from underrep_jax.train import steps as steps_lib


@dataclasses.dataclass(frozen=True)
class TrainProgram:
  """What one training run compiles: optimizer, state shapes and shardings, the step.

  `abstract_state` holds `jax.ShapeDtypeStruct`s with their shardings attached;
  `step(state, batch) -> (state, metrics)` is jitted with those shardings and donates
  the state (`step.jitted` is the bare `jax.jit` object).
  """
  topology: parallel.Topology
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  abstract_state: state_lib.TrainState
  shardings: state_lib.TrainState
  step: Callable[..., Any]
  total_steps: int

  def abstract_batch(self, shapes: Mapping[str, tuple[tuple[int, ...], Any]]):
    """{name: ShapeDtypeStruct} of a global batch from {name: (shape, dtype)}, each
    sharded over the batch axes as the loop places real batches."""
    return {name: jax.ShapeDtypeStruct(tuple(shape), np.dtype(dtype),
                                       sharding=self.topology.batch_sharding(len(shape)))
            for name, (shape, dtype) in shapes.items()}

  def lower(self, batch: Mapping[str, Any]) -> jax.stages.Lowered:
    """The step lowered for `batch` (arrays or ShapeDtypeStructs); no parameter memory."""
    with self.topology.context():
      return self.step.jitted.lower(self.abstract_state, dict(batch))

  def compile(self, batch: Mapping[str, Any]) -> jax.stages.Compiled:
    """The step compiled for this program's topology (`compiled.memory_analysis()`,
    `compiled.cost_analysis()` read what it needs per device)."""
    return self.lower(batch).compile()


def build(config, topology: parallel.Topology, init_params: Callable[[jax.Array], Any],
          loss_fn: losses.LossFn, total_steps: int | None = None) -> TrainProgram:
  """The program of `config` (`optimizer`, `train.microbatches`, `train.seed`) on
  `topology`. `init_params(rng)` returns params boxed with logical axis names; it is only
  traced. `total_steps` (default `config.train.steps`) sets the schedule's length."""
  total_steps = int(config.train.steps if total_steps is None else total_steps)
  tx, schedule = optimizer_lib.make_optimizer(config.optimizer, total_steps)
  # Shardings come from the params' logical names under the rules, outside the mesh
  # context: there the models' activation constraints are no-ops, which also sidesteps
  # init code that reshapes boxed kernels under a mesh (flax's DenseGeneral with several
  # feature axes).
  with nn.logical_axis_rules(topology.rules):
    abstract_state, shardings = state_lib.state_shardings(init_params, tx, topology.mesh,
                                                          topology.rules)
  step = steps_lib.make_train_step(loss_fn, tx, schedule, shardings, topology.mesh,
                                   topology.rules, microbatches=int(config.train.microbatches),
                                   seed=int(config.train.seed))
  return TrainProgram(topology=topology, tx=tx, schedule=schedule,
                      abstract_state=abstract_state, shardings=shardings, step=step,
                      total_steps=total_steps)
