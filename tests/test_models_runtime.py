"""The model runtime: a config's `model` section to a module, sharded params, tokenizer
and special ids, the same way for every job."""

import jax
import numpy as np
import pytest

from underrep_jax import config_schema
from underrep_jax import errors
from underrep_jax import parallel
from underrep_jax.evaluation import testing
from underrep_jax.models import initialize
from underrep_jax.models import runtime


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  """A training workdir whose model sits in export/, as the jobs leave it."""
  workdir = tmp_path_factory.mktemp("run")
  testing.save_tiny_lm(workdir / "export")
  return workdir


def test_a_workdir_stands_for_its_export(checkpoint):
  source = runtime.ModelSource.from_config(config_schema.model(path=str(checkpoint)))
  assert source.path == checkpoint / "export"
  assert (source.family, source.kind) == ("bloom", "decoder")
  ids = source.special_ids()
  assert (ids.pad, ids.eos) == (0, 2)  # config.json's, as PretrainedModel.ids reads them
  model = source.load()
  assert model.ids == ids


def test_the_loader_fills_the_shardings_the_caller_asks_for(checkpoint):
  source = runtime.ModelSource.from_config(config_schema.model(path=str(checkpoint)))
  topology = parallel.Topology.create((1, 4, 2))
  module = source.module()
  _, wanted = initialize.param_shardings(module, topology)
  params = source.params_loader()(wanted)
  got = jax.tree.map(lambda x: x.sharding, params)
  assert jax.tree.all(jax.tree.map(lambda a, b: a == b, got, wanted))
  reference = source.load().params  # one device
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(reference)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # the same tensors, placed


def test_model_options_reach_the_module(checkpoint):
  section = config_schema.model(path=str(checkpoint), dtype="bfloat16", remat=True,
                                scan_layers=True)
  module = runtime.ModelSource.from_config(section).module()
  assert module.dtype == np.dtype("bfloat16")
  assert module.config.remat and module.config.scan_layers
  params = runtime.ModelSource.from_config(section).load().params
  assert "layers" in params and "layers_0" not in params  # stacked for nn.scan


def test_from_scratch_needs_the_vocabulary_and_has_no_checkpoint():
  section = config_schema.model(family="llama")
  section.scratch.update(hidden_size=32, num_layers=2, num_heads=4)
  source = runtime.ModelSource.from_config(section)
  assert source.path is None and source.kind == "decoder"
  assert source.module(vocab_size=100).config.vocab_size == 100
  with pytest.raises(errors.ConfigError, match="vocabulary size"):
    source.module()
  with pytest.raises(errors.ConfigError, match="model.path is empty"):
    source.load()


def test_a_job_default_checkpoint_fills_an_empty_path(checkpoint):
  source = runtime.ModelSource.from_config(config_schema.model(),
                                           default_path=checkpoint / "export")
  assert source.path == checkpoint / "export"


def test_a_directory_without_config_json_is_one_model_error(tmp_path):
  with pytest.raises(errors.ModelError, match="no config.json"):
    runtime.ModelSource.from_config(config_schema.model(path=str(tmp_path)))
