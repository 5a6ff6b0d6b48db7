"""Rank-classification scores equal a brute-force per-label log-likelihood in PyTorch."""

import numpy as np
import pytest
import torch

from tolerances import float32_tol  # tests/tolerances.py
from underrep_jax.evaluation import model_loading
from underrep_jax.evaluation import scoring
from underrep_jax.evaluation import testing

# Log-probabilities of the tiny LMs (evaluation.testing): a log-softmax over 384 tokens
# after 2 layers (depth 3; mT5 2 + 2 layers, depth 5), summed over same-sign tokens, so
# the error is relative: 7e-5 (1.2e-4 for mT5). Scoring a token shifted by one moves a
# log-probability (~-6) by ~0.15, i.e. 2.5%; a mode slip changes it by a factor.
DECODER_RTOL = float32_tol(testing.VOCAB, depth=3)
MT5_RTOL = float32_tol(testing.VOCAB, depth=5)

PROMPTS = ["What is the sentiment of this Sundanese text? Text: abdi resep pisan\nSentiment:",
           "short",
           "Klasifikasikan topik teks berbahasa Jawa berikut sebagai bisnis atau agama.\n"
           "Aku seneng banget karo panganan iki, rasane enak tenan lan regane murah.\nJawaban:"]
ANSWERS = [" positive", " kehidupan sehari-hari", " netral", " culture & heritage"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  path = tmp_path_factory.mktemp("tiny_lm")
  torch_model = testing.save_tiny_lm(path)
  return model_loading.load(path), torch_model


def _brute_force(torch_model, prompt_ids, answer_ids):
  """Whole prompt + label through the torch model, once per label."""
  ids = torch.tensor([prompt_ids + answer_ids])
  with torch.inference_mode():
    logp = torch.log_softmax(torch_model(input_ids=ids).logits[0].float(), -1)
  tokens = logp[:-1].gather(-1, ids[0, 1:, None])[:, 0].double().numpy()
  label = tokens[len(prompt_ids) - 1:]
  return {"sum": label.sum(), "mean": label.mean(), "whole": tokens.mean()}


def test_scores_equal_torch_brute_force_in_every_mode(tiny):
  model, torch_model = tiny
  # Batch 2 over 3 prompts: two batches, the second with a filler row.
  scorer = scoring.Scorer(model, batch_size=2, length_multiple=8)
  out = scorer.score(PROMPTS, ANSWERS)
  prompt_ids = model_loading.encode(model, PROMPTS)
  answer_ids = model_loading.encode(model, ANSWERS)
  assert max(len(a) for a in answer_ids) > 1  # multi-token labels are covered
  for i, p in enumerate(prompt_ids):
    for j, a in enumerate(answer_ids):
      ref = _brute_force(torch_model, p, a)
      for mode in scoring.MODES:
        np.testing.assert_allclose(out[mode][i, j], ref[mode], rtol=DECODER_RTOL, atol=0,
                                   err_msg=f"{mode} prompt {i} answer {j}")


def test_unknown_mode_and_empty_answers_are_refused(tiny):
  scorer = scoring.Scorer(tiny[0], batch_size=2)
  with pytest.raises(ValueError, match="unknown scoring mode 'max'"):
    scorer.score(PROMPTS, ANSWERS, modes=("max",))
  with pytest.raises(ValueError, match="no answers"):
    scorer.score(PROMPTS, [])


def test_encoder_decoder_scores_equal_torch(tmp_path):
  from underrep_jax.models import testing as model_testing
  torch_model = model_testing.save_tiny("mt5", tmp_path, vocab_size=testing.VOCAB,
                                        decoder_start_token_id=0)
  testing.save_tokenizer(tmp_path)
  model = model_loading.load(tmp_path)
  out = scoring.Scorer(model, batch_size=2, length_multiple=8).score(PROMPTS[:2], ANSWERS)
  prompt_ids = model_loading.encode(model, PROMPTS[:2])
  for i, p in enumerate(prompt_ids):
    for j, a in enumerate(model_loading.encode(model, ANSWERS)):
      with torch.inference_mode():
        logits = torch_model(input_ids=torch.tensor([p]), labels=torch.tensor([a])).logits
      lp = torch.log_softmax(logits[0].float(), -1).gather(-1, torch.tensor(a)[:, None])
      np.testing.assert_allclose(out["sum"][i, j], lp.sum().item(), rtol=MT5_RTOL, atol=0)
      np.testing.assert_allclose(out["mean"][i, j], lp.mean().item(), rtol=MT5_RTOL, atol=0)
