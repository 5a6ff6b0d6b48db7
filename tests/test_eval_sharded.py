"""Evaluation on a mesh: 8 simulated devices and two processes give the one-device results."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import launcher  # tests/launcher.py
from tolerances import float32_tol  # tests/tolerances.py
from underrep_jax import parallel
from underrep_jax.evaluation import generation
from underrep_jax.evaluation import model_loading
from underrep_jax.evaluation import scoring
from underrep_jax.evaluation import testing

# Label log-probabilities of the tiny LM (log-softmax over 384 tokens after 2 layers,
# depth 3), computed with the rows on other devices and other per-device batch shapes.
DECODER_RTOL = float32_tol(testing.VOCAB, depth=3)

PROMPTS = [f"What is the sentiment of review {i}? " + "abdi resep pisan " * (i % 5) +
           "\nSentiment:" for i in range(13)]
ANSWERS = [" positive", " negative", " netral"]
# mesh -> its shape and how many ways it splits a batch (data x fsdp, as in MaxText)
MESHES = {"data 8": ((8, 1, 1), 8), "data 2 x fsdp 4": ((2, 4, 1), 8),
          "fsdp 2 x tensor 4": ((1, 2, 4), 2)}


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
  path = tmp_path_factory.mktemp("tiny_lm")
  testing.save_tiny_lm(path)
  return path


@pytest.fixture(scope="module")
def single(tiny_path):
  model = model_loading.load(tiny_path)
  scores = scoring.Scorer(model, batch_size=4, length_multiple=8).score(PROMPTS, ANSWERS)
  texts = generation.Generator(model, batch_size=4, max_new_tokens=6).generate(PROMPTS)
  return scores, texts


@pytest.mark.parametrize("mesh", list(MESHES))
def test_scores_and_generations_on_a_mesh_equal_one_device(tiny_path, single, mesh):
  shape, batch_ways = MESHES[mesh]
  model = model_loading.load(tiny_path, topology=parallel.Topology.create(shape))
  assert model.batch_multiple == batch_ways
  scorer = scoring.Scorer(model, batch_size=4, length_multiple=8)
  assert scorer.batch_size % model.batch_multiple == 0
  scores = scorer.score(PROMPTS, ANSWERS)
  for mode, values in single[0].items():
    np.testing.assert_allclose(scores[mode], values, rtol=DECODER_RTOL, err_msg=mode)
    np.testing.assert_array_equal(scores[mode].argmax(1), values.argmax(1))
  texts = generation.Generator(model, batch_size=4, max_new_tokens=6).generate(PROMPTS)
  assert texts == single[1]


def _env(devices: int) -> dict[str, str]:
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
  return env


EVAL_ARGS = ["--config=configs/evaluate.py:tiny", "--config.languages=sun",
             "--config.max_examples=5", "--config.mt_max_examples=3",
             "--config.max_new_tokens=4", "--config.batch_size=4"]


def _records(workdir):
  predictions = [json.loads(l) for l in (workdir / "predictions.jsonl").read_text().splitlines()]
  translations = [json.loads(l) for l in (workdir / "translations.jsonl").read_text().splitlines()]
  return predictions, translations


def test_two_processes_evaluate_like_one(tiny_path, tmp_path):
  """Two processes of 4 devices each (gloo collectives) against one process of 8."""
  launcher.run_processes(
      [sys.executable, "-m", "underrep_jax.main", *EVAL_ARGS, f"--workdir={tmp_path / 'two'}",
       f"--config.model.path={tiny_path}"], [_env(4), _env(4)])
  one = subprocess.run(
      [sys.executable, "-m", "underrep_jax.main", *EVAL_ARGS, f"--workdir={tmp_path / 'one'}",
       f"--config.model.path={tiny_path}"],
      env=_env(8), capture_output=True, text=True, cwd=launcher.REPO, timeout=400)
  assert one.returncode == 0, one.stderr[-3000:]

  two_predictions, two_translations = _records(tmp_path / "two")
  one_predictions, one_translations = _records(tmp_path / "one")
  assert len(one_predictions) == 6 * 5
  assert [(r["id"], r["prompt"], r["prediction"]) for r in two_predictions] == [
      (r["id"], r["prompt"], r["prediction"]) for r in one_predictions]
  for a, b in zip(two_predictions, one_predictions):
    np.testing.assert_allclose(list(a["scores"].values()), list(b["scores"].values()),
                               rtol=DECODER_RTOL)
  assert two_translations == one_translations
  # Process 1 wrote nothing of its own: one workdir, written once.
  assert sorted(p.name for p in (tmp_path / "two").iterdir() if p.suffix == ".jsonl") == [
      "predictions.jsonl", "translations.jsonl"]


def test_lowered_scoring_step_is_the_scorers(tiny_path, single):
  """`scoring.lower` (what `plan` compiles for a target) computes the scorer's sums."""
  topology = parallel.Topology.create((2, 4, 1))
  model = model_loading.load(tiny_path, topology=topology)
  prompts = model_loading.encode(model, PROMPTS[:8])
  answers = model_loading.encode(model, ANSWERS)
  from underrep_jax.models import batching
  ids, mask = batching.pad_rows(prompts, 64, model.ids.pad, side="left")
  label_ids, label_mask = batching.pad_rows(answers, max(map(len, answers)), model.ids.pad)
  compiled = scoring.lower(model.module, model.kind, topology, batch_size=8, prompt_length=64,
                           num_labels=len(answers), label_length=label_ids.shape[1]).compile()
  label_sum = model.call_batch(lambda p, *a: compiled(p, *a), (ids, mask), label_ids,
                               label_mask)[0]
  np.testing.assert_allclose(label_sum, single[0]["sum"][:8], rtol=DECODER_RTOL)


def test_lowered_generation_is_the_generators(tiny_path, single):
  """`generation.lower` (what `plan` compiles for a target) generates the Generator's
  tokens: the same greedy ids for the same left-padded batch."""
  topology = parallel.Topology.create((2, 4, 1))
  model = model_loading.load(tiny_path, topology=topology)
  prompts = model_loading.encode(model, PROMPTS[:8])
  from underrep_jax.models import batching
  ids, mask = batching.pad_rows(prompts, 64, model.ids.pad, side="left")
  compiled = generation.lower(model.module, model.kind, topology, batch_size=8,
                              prompt_length=64, max_new_tokens=6, eos_id=model.ids.eos,
                              pad_id=model.ids.pad).compile()
  tokens = model.call_batch(lambda p, *a: compiled(p, *a), (ids, mask))
  expected = generation.Generator(model, batch_size=8, max_new_tokens=6,
                                  length_multiple=64).generate_ids(prompts)
  eos = model.ids.eos
  assert [row[:row.index(eos)] if eos in row else row for row in tokens.tolist()] == expected
