"""The `paper` preset: the authors' recipe, consistent across the config's sections, and
its InfoNCE step compiles on a sharded 8-device mesh (abstract shapes, no training)."""

import importlib.util
import pathlib

import jax
import pytest

from underrep_jax import parallel
from underrep_jax.jobs import univar as univar_job
from underrep_jax.train import program

CONFIG = pathlib.Path(__file__).resolve().parents[1] / "configs" / "univar.py"


def _paper():
  spec = importlib.util.spec_from_file_location("univar_config", CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config("paper")


def test_paper_recipe():
  config = _paper()
  assert (config.train.batch_size, config.train.epochs, config.train.microbatches) == (64, 3.0, 1)
  opt = config.optimizer
  assert (opt.name, opt.learning_rate, opt.weight_decay, opt.warmup_steps, opt.schedule,
          opt.clip_norm) == ("adamw", 2e-4, 0.01, 700, "inverse_sqrt", 1.0)
  assert (config.model.dtype, config.model.param_dtype) == ("bfloat16", "float32")
  assert (config.loss.logit_scale, config.loss.symmetric) == (50.0, False)
  assert (config.views.sampling, config.views.disjoint) == ("proportional", False)
  assert (config.eval.k, config.eval.knn_metric) == (50, "euclidean")
  assert config.max_length <= 0  # from λ
  for lam, length in ((1, 256), (5, 1024), (20, 2048), (80, 8192)):
    config.views.max_qas = lam
    assert univar_job.view_length(config) == length
    assert univar_job.view_probe_length(config) == length
  # 3 epochs of floor(QAs / 64) steps, whatever λ.
  assert univar_job.resolve_steps(config, 10_000) == 3 * 156


@pytest.mark.parametrize("mesh_shape", [None, (2, 4, 1)])  # None: the preset's (data 8)
def test_paper_step_compiles_on_a_sharded_mesh(mesh_shape):
  config = _paper()
  config.views.max_qas = 1  # 256 tokens: within all-MiniLM-L6-v2's 512 positions
  if mesh_shape is not None:
    config.mesh.shape = mesh_shape
  # What `run` hands the training loop (and `plan` compiles): the job's train_spec.
  spec = univar_job.train_spec(config, univar_job.model_source(config))
  module = spec.module
  assert (str(module.dtype), str(module.param_dtype)) == ("bfloat16", "float32")
  assert spec.length == 256 and spec.tokens_per_step == 64 * 2 * 256
  topology = parallel.Topology.from_config(config.mesh)
  assert topology.data_parallel_size == 8
  steps = univar_job.resolve_steps(config, 6400)
  train_program = program.build(config, topology, spec.init_params, spec.loss_fn,
                                total_steps=steps)
  compiled = train_program.compile(train_program.abstract_batch(spec.batch_shapes))
  assert compiled.memory_analysis() is not None
  # With fsdp the matrices are sharded 4 ways, not copied to every device.
  params = jax.tree.leaves(train_program.abstract_state.params)
  sharded = sum(x.size for x in params if x.sharding.shard_shape(x.shape) != x.shape)
  if mesh_shape is None:
    assert sharded == 0
  else:
    assert sharded > 0.9 * sum(x.size for x in params)
  # Warmup to the peak at step 700, then inverse-sqrt decay.
  schedule = train_program.schedule
  assert float(schedule(700)) == pytest.approx(2e-4, rel=1e-5)
  assert float(schedule(350)) == pytest.approx(1e-4, rel=1e-5)
  assert float(schedule(2800)) == pytest.approx(1e-4, rel=1e-3)
