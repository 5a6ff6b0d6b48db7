"""InstructAlign trains decoder-only models causally, as they are pretrained and used.

Batches come from the real SeqIO feature converters (prefix-LM features, packed or not,
split lengths or one shared budget); logits and losses come from the adapter and loss the
instruction-tuning jobs (InstructAlign included) build, on a tiny random BLOOM saved by
transformers and read by hf.load.
"""

import jax
import ml_collections
import numpy as np
import pytest
import tensorflow as tf
import torch

from underrep_jax.data import input_pipeline
from underrep_jax.jobs import instruct as job
from underrep_jax.models import hf
from underrep_jax.models import testing
from underrep_jax.train import losses

# (inputs, targets) token ids; targets end in EOS (1), as the tasks' preprocessors leave them.
EXAMPLES = [([5, 6, 7, 8, 9, 10], [11, 12, 1]),
            ([20, 21, 22], [23, 24, 25, 26, 1]),
            ([30, 31, 32, 33, 34, 35, 36, 37], [38, 1]),
            ([40, 41], [42, 43, 1])]


@pytest.fixture(scope="module")
def bloom(tmp_path_factory):
  path = tmp_path_factory.mktemp("tiny_bloom")
  torch_model = testing.save_tiny("bloom", path)
  return hf.load(path), torch_model


def _config(loss_on: str, prefix_lm: bool = False):
  return ml_collections.ConfigDict(dict(train=dict(loss_on=loss_on, prefix_lm=prefix_lm)))


def _batch(loss_on: str, pack: bool, max_length: int = 0,
           prefix_lm: bool = False) -> dict[str, np.ndarray]:
  """All EXAMPLES as one batch, through the converter and layout the training pipeline uses."""
  config = input_pipeline.InputConfig(mixture="unused", inputs_length=10, targets_length=6,
                                      pack=pack, loss_on=loss_on, max_length=max_length)
  ds = tf.data.Dataset.from_generator(
      lambda: ({"inputs": np.asarray(i, np.int32), "targets": np.asarray(t, np.int32)}
               for i, t in EXAMPLES),
      output_signature={"inputs": tf.TensorSpec([None], tf.int32),
                        "targets": tf.TensorSpec([None], tf.int32)})
  ds = input_pipeline.feature_converter(config)(
      ds, input_pipeline.task_feature_lengths(config))
  rows = list(ds.as_numpy_iterator())
  batch = {k: np.stack([r[k] for r in rows]).astype(np.int32) for k in rows[0]}
  return batch if prefix_lm else input_pipeline.causal_lm_layout(batch)


def _with_token_changed(batch, row: int, position: int) -> dict[str, np.ndarray]:
  """The batch with the input token at `position + 1` of `row` replaced. In the causal
  layout it is also the target of `position`; in SeqIO's prefix layout, of `position + 1`."""
  out = {k: v.copy() for k, v in batch.items()}
  new = (out["decoder_input_tokens"][row, position + 1] + 50) % testing.VOCAB
  out["decoder_input_tokens"][row, position + 1] = new
  return out


def _same_example_next(batch, row: int) -> list[int]:
  """Positions p whose next position p + 1 holds the same (non-padding) example."""
  segments = batch.get("decoder_segment_ids", (batch["decoder_target_tokens"] != 0).astype(int))
  seg = segments[row]
  return [p for p in range(len(seg) - 1) if seg[p] and seg[p] == seg[p + 1]]


@pytest.mark.parametrize("loss_on", ["all", "targets"])
@pytest.mark.parametrize("pack,max_length", [(False, 0), (True, 0), (False, 12), (True, 16)])
def test_no_logit_sees_a_later_token(bloom, loss_on, pack, max_length):
  model, _ = bloom
  batch = _batch(loss_on, pack, max_length)
  assert "decoder_causal_attention" not in batch  # the causal layout drops the prefix mask
  adapter = jax.jit(job.make_adapter(_config(loss_on), model.module,
                                     input_pipeline.DECODER_ONLY))
  rng = jax.random.PRNGKey(0)
  before = np.asarray(adapter(model.params, batch, rng))
  checked = 0
  for row in range(batch["decoder_target_tokens"].shape[0]):
    for position in _same_example_next(batch, row)[::2]:  # every other: prompts and answers
      after = np.asarray(adapter(model.params, _with_token_changed(batch, row, position), rng))
      # Exact: a masked key gets weight exp(-inf) = 0, so the positions up to the changed
      # token compute the same numbers whatever that token is.
      np.testing.assert_array_equal(after[row, :position + 1], before[row, :position + 1])
      assert not np.array_equal(after[row, position + 1], before[row, position + 1])
      checked += 1
  assert checked >= 8


def test_prefix_lm_stays_an_explicit_option(bloom):
  """With train.prefix_lm the prompt attends ahead (the check above would fail)."""
  model, _ = bloom
  batch = _batch("all", pack=False, prefix_lm=True)
  adapter = jax.jit(job.make_adapter(_config("all", prefix_lm=True), model.module,
                                     input_pipeline.DECODER_ONLY))
  rng = jax.random.PRNGKey(0)
  before = np.asarray(adapter(model.params, batch, rng))
  after = np.asarray(adapter(model.params, _with_token_changed(batch, 0, 3), rng))
  assert not np.array_equal(after[0, :3], before[0, :3])  # prompt position 1 sees token 3


@pytest.mark.parametrize("max_length", [0, 12])
def test_loss_on_all_equals_transformers_causal_lm_loss(bloom, max_length):
  model, torch_model = bloom
  batch = _batch("all", pack=False, max_length=max_length)
  loss_fn = losses.token_loss(job.make_adapter(_config("all"), model.module,
                                               input_pipeline.DECODER_ONLY), loss_on="all")
  loss_sum, weight, _ = jax.jit(loss_fn)(model.params, batch, jax.random.PRNGKey(0))
  ours = float(loss_sum) / float(weight)

  # The same tokens in transformers, `labels=input_ids`: every token after the first is
  # predicted, as the original trained (no start token is added in front).
  nll_sum, count = 0.0, 0
  for tokens in batch["decoder_input_tokens"]:
    n = int((tokens != 0).sum())
    ids = torch.tensor(tokens[:n][None], dtype=torch.long)
    with torch.no_grad():
      loss = torch_model(input_ids=ids, labels=ids).loss
    nll_sum += float(loss) * (n - 1)
    count += n - 1
  assert int(weight) == count
  # float32 (eps 1.2e-7) through 2 layers whose widest reduction is the 4*64 MLP, then a
  # log-softmax over the 128-token vocabulary: about eps * (2 * 256 + 128) relative.
  np.testing.assert_allclose(ours, nll_sum / count, rtol=1.2e-7 * (2 * 256 + 128) * 2)
