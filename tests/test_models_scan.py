"""`scan_layers`: the decoder layers as one nn.scan over stacked parameters.

A scanned model loaded from a checkpoint must compute what the unrolled model computes
(logits, gradients, dropout, KV-cache decoding), export the same HF tensors, and place
its stacked parameters with an unsharded leading layer axis.
"""

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import transformers
from jax.sharding import PartitionSpec as P
from safetensors.numpy import load_file

from tolerances import float32_tol  # tests/tolerances.py
from underrep_jax import models
from underrep_jax import parallel
from underrep_jax.evaluation import generation
from underrep_jax.evaluation import scoring
from underrep_jax.evaluation import testing as eval_testing
from underrep_jax.models import hf
from underrep_jax.models import testing

FAMILIES = ["bloom", "llama", "xglm"]  # the tiny llama has grouped KV heads (4 q, 2 kv)
PAD_IDS = {"xglm": 1}
# Tiny models (models.testing): reductions of <= 256 (BLOOM's MLP, 4 * 64), 2 layers and a
# head. Scanned and unrolled are two XLA programs of the same arithmetic. On the x86 CPU
# these tests were written on (AMD EPYC, jax 0.10.2) logits and decoding agree bit for
# bit, and so do BLOOM's and Llama's gradients, but XGLM's gradients do not (by up to
# 7e-9 of entries up to 0.19: the loop body is fused differently from the unrolled
# layers), so the comparisons allow float32 rounding. Every bug they guard against is far
# larger: a layer with another layer's weights, a mask or position not reaching the scan,
# or a cache slot of the wrong layer moves logits by >= 0.01.
REDUCTION, DEPTH = 256, 3


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  paths = {}

  def get(name):
    if name not in paths:
      paths[name] = tmp_path_factory.mktemp(name)
      testing.save_tiny(name, paths[name])
    return paths[name]

  return get


def _stack_layers(tree, num_layers):
  """An unrolled parameter tree in the scanned layout (layers_{i}/... -> layers/...[i])."""
  out = {k: v for k, v in tree.items() if not k.startswith("layers_")}
  out["layers"] = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]),
                               *[tree[f"layers_{i}"] for i in range(num_layers)])
  return out


def _assert_trees_close(actual, expected, depth):
  """Leaf by leaf, within float32 rounding relative to each leaf's largest entry (at least
  1e-6: the key-bias gradients are zero, softmax being shift-invariant, up to rounding)."""
  flat_actual = jax.tree_util.tree_flatten_with_path(actual)[0]
  flat_expected = jax.tree_util.tree_flatten_with_path(expected)[0]
  assert [p for p, _ in flat_actual] == [p for p, _ in flat_expected]
  for (path, a), (_, b) in zip(flat_actual, flat_expected):
    b = np.asarray(b)
    atol = float32_tol(REDUCTION, depth, scale=max(1e-6, np.abs(b).max()))
    np.testing.assert_allclose(np.asarray(a), b, rtol=0, atol=atol,
                               err_msg=jax.tree_util.keystr(path))


def _inputs(name):
  """(ids, loss weights, apply keywords): left-padded rows and a packed row of two
  sequences, with a prefix-LM mask; everything the layers are handed (mask, positions,
  bias) differs between rows."""
  ids, mask = testing.padded_batch([9, 5, 2, 1], 9, left=True, pad_id=PAD_IDS.get(name, 0))
  ids[3], mask[3] = [11, 12, 13, 14, 15, 40, 41, 42, 0], [1, 1, 1, 1, 1, 1, 1, 1, 0]
  segments = mask.copy()
  segments[3, 5:8] = 2
  positions = np.maximum(np.cumsum(mask, axis=-1) - 1, 0)
  positions[3, 5:8] = [0, 1, 2]
  prefix = np.zeros_like(mask)
  prefix[:, -3:] = 1
  prefix[3] = [1, 1, 0, 0, 0, 1, 0, 0, 0]
  return ids, mask, {"attention_mask": mask, "segment_ids": segments, "positions": positions,
                     "causal_attention": prefix}


def _token_loss_and_logits(module, params, ids, weights, **kwargs):
  logits = module.apply({"params": params}, ids, **kwargs)
  logp = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32), axis=-1)
  nll = -jnp.take_along_axis(logp, ids[:, 1:, None], axis=-1)[..., 0]
  weights = weights[:, 1:] * weights[:, :-1]
  return jnp.sum(nll * weights) / jnp.sum(weights), logits


def _logits_and_grads(model, ids, weights, kwargs):
  """Logits and the gradients of the mean next-token loss over the weighted positions."""
  (_, logits), grads = jax.jit(jax.value_and_grad(
      lambda p: _token_loss_and_logits(model.module, p, ids, weights, **kwargs), has_aux=True))(
          model.params)
  return np.asarray(logits), grads


@pytest.fixture(scope="module")
def unrolled_results(checkpoint):
  """The unrolled model and its (logits, grads) per input, computed once per family."""
  results = {}

  def get(name):
    if name not in results:
      model = hf.load(checkpoint(name))
      results[name] = model, _logits_and_grads(model, *_inputs(name))
    return results[name]

  return get


@pytest.mark.parametrize("remat", [False, True], ids=["plain", "remat"])
@pytest.mark.parametrize("name", FAMILIES)
def test_scanned_equals_unrolled(checkpoint, unrolled_results, name, remat):
  unrolled, expected = unrolled_results(name)
  scanned = hf.load(checkpoint(name), scan_layers=True, remat=remat)
  assert scanned.config.scan_layers and scanned.config.remat == remat
  num_layers = unrolled.config.num_layers
  assert not any(k.startswith("layers_") for k in scanned.params)
  assert {x.shape[0] for x in jax.tree.leaves(scanned.params["layers"])} == {num_layers}
  # Exact on purpose: loading copies each layer's tensor into its slice.
  stacked = _stack_layers(unrolled.params, num_layers)
  assert jax.tree.structure(scanned.params) == jax.tree.structure(stacked)
  for a, b in zip(jax.tree.leaves(scanned.params), jax.tree.leaves(stacked)):
    np.testing.assert_array_equal(np.asarray(a), b)

  expected_logits, expected_grads = expected
  ids, weights, kwargs = _inputs(name)
  logits, grads = _logits_and_grads(scanned, ids, weights, kwargs)
  real = weights.astype(bool)
  atol = float32_tol(REDUCTION, DEPTH, scale=max(1.0, np.abs(expected_logits[real]).max()))
  assert np.abs(logits[real] - expected_logits[real]).max() <= atol
  # Gradients run the forward and the backward: twice the depth.
  _assert_trees_close(grads, _stack_layers(expected_grads, num_layers), depth=2 * DEPTH)


def test_scanned_dropout_follows_the_rng_and_matches_remat(checkpoint):
  loaded = hf.load(checkpoint("llama"), scan_layers=True)
  ids, mask = testing.padded_batch([6, 4], 6)

  def loss(module, params, rng=None):
    kwargs = {} if rng is None else {"rngs": {"dropout": rng}, "deterministic": False}
    return _token_loss_and_logits(module, params, ids, mask, attention_mask=mask, **kwargs)[0]

  def noisy(remat):
    module = loaded.module.clone(config=dataclasses.replace(loaded.config, dropout=0.5,
                                                            remat=remat))
    return jax.jit(jax.value_and_grad(functools.partial(loss, module)))

  quiet = jax.jit(functools.partial(loss, loaded.module))(loaded.params)
  value, grads = noisy(False)(loaded.params, jax.random.PRNGKey(1))
  assert np.isfinite(value) and all(np.isfinite(g).all() for g in jax.tree.leaves(grads))
  # Llama drops out only inside its layers: the loss moves only if the scanned layers see
  # the dropout rng, and with it.
  assert abs(float(value) - float(quiet)) > 1e-3
  assert abs(float(noisy(False)(loaded.params, jax.random.PRNGKey(2))[0]) - float(value)) > 1e-3
  # Remat recomputes the forward with the same rng: the same masks, the same loss.
  value_remat, grads_remat = noisy(True)(loaded.params, jax.random.PRNGKey(1))
  np.testing.assert_allclose(value_remat, value, rtol=float32_tol(REDUCTION, DEPTH))
  _assert_trees_close(grads_remat, grads, depth=2 * DEPTH)


@pytest.mark.parametrize("name", FAMILIES)
def test_kv_cache_decoding_equals_unrolled(checkpoint, name):
  batch, prompt, total, repeats = 3, 5, 9, 2
  ids = testing.padded_batch([total] * batch, total, seed=3)[0]
  prompt_ids, prompt_mask = testing.padded_batch([5, 3, 1], prompt, left=True, seed=4)
  ids[:, :prompt] = prompt_ids
  mask = np.ones_like(ids)
  mask[:, :prompt] = prompt_mask

  def decode(model):
    """Prompt in one call, its cache rows repeated (as scoring and beam search do on axis
    0), then one token per call."""
    step = jax.jit(lambda cache, chunk, chunk_mask: model.module.apply(
        {"params": model.params, "cache": cache}, chunk, attention_mask=chunk_mask,
        decode=True, mutable=["cache"]))
    out, variables = step(models.init_cache(model.module, batch, total), ids[:, :prompt],
                          mask[:, :prompt])
    outputs = [jnp.repeat(out, repeats, axis=0)]
    cache = jax.tree.map(lambda x: jnp.repeat(x, repeats, axis=0) if x.ndim else x,
                         variables["cache"])
    for t in range(prompt, total):
      out, variables = step(cache, np.repeat(ids[:, t:t + 1], repeats, axis=0),
                            np.ones((batch * repeats, 1), np.int32))
      cache = variables["cache"]
      outputs.append(out)
    return np.asarray(jnp.concatenate(outputs, axis=1)), cache

  unrolled = hf.load(checkpoint(name))
  scanned = hf.load(checkpoint(name), scan_layers=True)
  expected, _ = decode(unrolled)
  actual, cache = decode(scanned)
  # The layers' cache is stacked behind the batch axis: [B, L, S, K, H].
  assert cache["layers"]["attention"]["cached_key"].shape[:3] == (
      batch * repeats, scanned.config.num_layers, total)
  real = np.repeat(mask, repeats, axis=0).astype(bool)
  atol = float32_tol(REDUCTION, DEPTH, scale=max(1.0, np.abs(expected[real]).max()))
  assert np.abs(actual[real] - expected[real]).max() <= atol


@pytest.mark.parametrize("name", ["bloom", "llama"])
def test_export_of_scanned_model_equals_unrolled_export(checkpoint, tmp_path, name):
  unrolled = hf.load(checkpoint(name))
  scanned = hf.load(checkpoint(name), scan_layers=True)
  hf.save(unrolled, tmp_path / "unrolled")
  hf.save(hf.from_params(scanned.module, scanned.params, like=scanned), tmp_path / "scanned")

  config = json.loads((tmp_path / "scanned" / "config.json").read_text())
  assert not any("scan" in key for key in config)
  assert config == json.loads((tmp_path / "unrolled" / "config.json").read_text())
  ours = load_file(tmp_path / "scanned" / hf.SAFETENSORS)
  theirs = load_file(tmp_path / "unrolled" / hf.SAFETENSORS)
  assert sorted(ours) == sorted(theirs)
  for key in theirs:  # exact on purpose: slices of the stacked arrays, no arithmetic
    assert (ours[key].dtype, ours[key].shape) == (theirs[key].dtype, theirs[key].shape), key
    assert ours[key].tobytes() == theirs[key].tobytes(), key

  torch_model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "scanned").eval()
  ids, mask = testing.padded_batch([7, 4], 7)
  expected = testing.torch_forward(torch_model, ids, mask)
  actual = np.asarray(scanned.logits(ids, mask))
  # JAX against PyTorch, as in test_models_parity: 2 layers and a head.
  atol = float32_tol(REDUCTION, DEPTH, scale=max(1.0, np.abs(expected).max()))
  assert np.abs(actual - expected)[mask.astype(bool)].max() <= atol


@pytest.mark.parametrize("name,family", [("mt5", "t5"), ("bert", "bert")])
def test_families_that_cannot_scan_say_so(checkpoint, name, family):
  one_line = rf"^{family} cannot scan its layers \(scan_layers=True\)[^\n]*$"
  with pytest.raises(ValueError, match=one_line):
    hf.load(checkpoint(name), scan_layers=True)
  with pytest.raises(ValueError, match=one_line):
    models.build(family, {}, scan_layers=True)
  assert not hasattr(hf.build_module(checkpoint(name), scan_layers=False).config, "scan_layers")


def test_stacked_parameters_get_an_unsharded_layer_axis(checkpoint):
  topology = parallel.Topology.of(parallel.make_mesh((2, 2, 2)))
  module = hf.build_module(checkpoint("llama"), scan_layers=True)
  _, shardings = models.param_shardings(module, topology)
  layers = shardings["layers"]
  assert layers["gate_proj"]["kernel"].spec == P(None, "fsdp", "tensor")
  assert layers["attention"]["out"]["kernel"].spec == P(None, "tensor", None, "fsdp")
  assert layers["mlp_norm"]["scale"].spec == P(None, None)
  assert shardings["embed"]["embedding"].spec == P("tensor", "fsdp")
  # Loading places each stacked parameter straight into that sharding.
  sharded = hf.load(checkpoint("llama"), scan_layers=True, topology=topology)
  kernel = sharded.params["layers"]["gate_proj"]["kernel"]
  assert kernel.sharding.spec == P(None, "fsdp", "tensor")
  single = hf.load(checkpoint("llama")).params
  np.testing.assert_array_equal(np.asarray(kernel), np.stack(
      [single[f"layers_{i}"]["gate_proj"]["kernel"] for i in range(module.config.num_layers)]))


def test_scoring_and_beam_search_of_a_scanned_model(tmp_path):
  # Both repeat and gather cache rows on axis 0; the scanned cache keeps the batch there.
  eval_testing.save_tiny_lm(tmp_path)
  unrolled, scanned = hf.load(tmp_path), hf.load(tmp_path, scan_layers=True)
  prompts, answers = ["abdi resep pisan\nSentiment:", "short"], [" positive", " netral"]
  expected = scoring.Scorer(unrolled, batch_size=2).score(prompts, answers)
  actual = scoring.Scorer(scanned, batch_size=2).score(prompts, answers)
  for mode in scoring.MODES:  # log-softmax over the vocabulary after 2 layers (depth 3)
    np.testing.assert_allclose(actual[mode], expected[mode], atol=0,
                               rtol=float32_tol(eval_testing.VOCAB, DEPTH), err_msg=mode)
  prompt_ids = unrolled.tokenizer.encode_ids(prompts)
  beams = lambda model: generation.Generator(model, batch_size=2, max_new_tokens=4,
                                             num_beams=3).generate_ids(prompt_ids)
  # Exact on purpose: token ids; only a near-tie flipped by rounding could change one.
  assert beams(scanned) == beams(unrolled)
