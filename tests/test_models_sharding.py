"""Sharding on 8 simulated CPU devices: parameters land where the rules say, and sharded
outputs equal single-device outputs."""

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from tolerances import float32_tol  # tests/tolerances.py
from underrep_jax import models
from underrep_jax import parallel
from underrep_jax.models import hf
from underrep_jax.models import testing

MESHES = [(8, 1, 1), (2, 4, 1), (2, 2, 2)]

LLAMA = {"vocab_size": 128, "hidden_size": 64, "intermediate_size": 128, "num_layers": 2,
         "num_heads": 4, "num_kv_heads": 2, "head_dim": 16}

EXPECTED_SPECS = {
    "layers_0/gate_proj/kernel": P("fsdp", "tensor"),
    "layers_1/down_proj/kernel": P("tensor", "fsdp"),
    "layers_0/attention/query/kernel": P("fsdp", "tensor", None),
    "layers_0/attention/key/kernel": P("fsdp", "tensor", None),
    "layers_0/attention/out/kernel": P("tensor", None, "fsdp"),
    "embed/embedding": P("tensor", "fsdp"),
    "lm_head/kernel": P("fsdp", "tensor"),
    "final_norm/scale": P(None),
}


def _get(tree, path):
  for key in path.split("/"):
    tree = tree[key]
  return tree


@pytest.mark.parametrize("shape", MESHES, ids=str)
def test_param_shardings_follow_the_rules(shape):
  mesh = parallel.make_mesh(shape)
  _, shardings = models.param_shardings(models.build("llama", LLAMA), parallel.Topology.of(mesh))
  for path, spec in EXPECTED_SPECS.items():
    assert _get(shardings, path).spec == spec, path
    assert _get(shardings, path).mesh.shape == mesh.shape


def test_init_params_creates_sharded_arrays_equal_to_single_device():
  mesh = parallel.make_mesh((2, 2, 2))
  module = models.build("llama", LLAMA)
  params = models.init_params(module, parallel.Topology.of(mesh), jax.random.PRNGKey(0))
  single = models.init_params(module, rng=jax.random.PRNGKey(0))
  for path, spec in EXPECTED_SPECS.items():
    assert _get(params, path).sharding.spec == spec, path
    # Exact on purpose: one rng stream, only placed differently.
    np.testing.assert_array_equal(np.asarray(_get(params, path)), np.asarray(_get(single, path)))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
  out = {}
  for name in ("bloom", "llama", "mt5", "bert"):
    out[name] = tmp_path_factory.mktemp(name)
    testing.save_tiny(name, out[name])
  return out


@pytest.mark.parametrize("shape", MESHES, ids=str)
@pytest.mark.parametrize("name", ["bloom", "llama", "mt5", "bert"])
def test_sharded_load_matches_single_device(checkpoints, name, shape):
  mesh = parallel.make_mesh(shape)
  single = hf.load(checkpoints[name])
  sharded = hf.load(checkpoints[name], topology=parallel.Topology.of(mesh))
  leaf = {"bloom": "layers_0/wi/kernel", "llama": "layers_0/up_proj/kernel",
          "mt5": "encoder/layers_0/wi_0/kernel", "bert": "layers_1/wi/kernel"}[name]
  assert _get(sharded.params, leaf).sharding.spec == P("fsdp", "tensor")
  assert _get(sharded.params, leaf).sharding.mesh.shape == mesh.shape
  ids, mask = testing.padded_batch([8, 6, 5, 3, 8, 2, 7, 1], 8)
  decoder_ids = testing.padded_batch([4] * 8, 4, seed=1)[0] if single.kind == "encoder_decoder" else None
  expected = testing.our_forward(single, ids, mask, decoder_ids)
  actual = testing.our_forward(sharded, ids, mask, decoder_ids)
  # fp32 sums in another order: reductions of <= 256 (BLOOM's MLP, 4 * 64) through up to
  # 2 + 2 layers and a head, relative to the output scale (mT5 logits reach ~40): 9.5e-5.
  atol = float32_tol(256, depth=5, scale=max(1.0, np.abs(expected).max()))
  np.testing.assert_allclose(actual, expected, rtol=0, atol=atol)
