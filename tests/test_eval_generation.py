"""Greedy and beam search with the KV cache against step-by-step PyTorch decoding."""

import pytest
import torch

from tolerances import float32_tol  # tests/tolerances.py
from underrep_jax.evaluation import generation
from underrep_jax.evaluation import model_loading
from underrep_jax.evaluation import testing

PROMPTS = ["Translate the following text from Indonesian to Sundanese.\nSaya suka makan.\n"
           "Sundanese translation:", "a b", "Terjemahkan teks berikut ini"]
STEPS = 6


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  path = tmp_path_factory.mktemp("tiny_lm")
  torch_model = testing.save_tiny_lm(path, eos_token_id=-5)  # never stops: full length
  return model_loading.load(path), torch_model


def _torch_greedy(torch_model, ids, steps):
  ids = list(ids)
  for _ in range(steps):
    with torch.inference_mode():
      ids.append(int(torch_model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
  return ids[-steps:]


def _torch_logprob(torch_model, prompt, continuation):
  ids = torch.tensor([prompt + continuation])
  with torch.inference_mode():
    logp = torch.log_softmax(torch_model(input_ids=ids).logits[0].float(), -1)
  return float(logp[len(prompt) - 1:-1].gather(-1, ids[0, len(prompt):, None]).sum())


def test_greedy_equals_torch_argmax_and_beam_one(tiny):
  model, torch_model = tiny
  prompt_ids = model_loading.encode(model, PROMPTS)
  kw = dict(batch_size=2, max_new_tokens=STEPS, length_multiple=8)
  greedy = generation.Generator(model, **kw).generate_ids(prompt_ids)
  beam1 = generation.Generator(model, greedy=False, num_beams=1, **kw).generate_ids(prompt_ids)
  assert greedy == beam1
  for p, g in zip(prompt_ids, greedy):
    assert g == _torch_greedy(torch_model, p, STEPS)


def test_beam_search_finds_at_least_the_greedy_likelihood(tiny):
  model, torch_model = tiny
  prompt_ids = model_loading.encode(model, PROMPTS)
  kw = dict(batch_size=4, max_new_tokens=STEPS, length_multiple=8)
  greedy = generation.Generator(model, **kw).generate_ids(prompt_ids)
  beam = generation.Generator(model, greedy=False, num_beams=4, length_penalty=0.0,
                              **kw).generate_ids(prompt_ids)
  for p, g, b in zip(prompt_ids, greedy, beam):
    assert len(b) == STEPS
    greedy_logprob = _torch_logprob(torch_model, p, g)
    # Slack for near-ties ranked by JAX's rounding: a 384-way log-softmax after 2 layers,
    # relative to the summed log-probability (~6 * STEPS).
    slack = float32_tol(testing.VOCAB, depth=3, scale=abs(greedy_logprob))
    assert _torch_logprob(torch_model, p, b) >= greedy_logprob - slack


def test_generation_stops_at_eos(tmp_path):
  testing.save_tiny_lm(tmp_path)
  model = model_loading.load(tmp_path)
  prompt_ids = model_loading.encode(model, PROMPTS)
  free = generation.Generator(model, batch_size=4, max_new_tokens=STEPS).generate_ids(prompt_ids)
  # Make the first generated token of row 0 the EOS: nothing is returned for it.
  model.hf_config["eos_token_id"] = free[0][0]
  generator = generation.Generator(model, batch_size=4, max_new_tokens=STEPS)
  assert generator.generate_ids(prompt_ids)[0] == []
  texts = generator.generate(PROMPTS)
  assert len(texts) == 3 and all(isinstance(t, str) for t in texts)


def test_encoder_is_refused(tmp_path):
  from underrep_jax.models import testing as model_testing
  model_testing.save_tiny("bert", tmp_path)
  from underrep_jax.models import hf
  with pytest.raises(TypeError, match="decoder-only or encoder-decoder"):
    generation.Generator(hf.load(tmp_path))


def test_encoder_decoder_greedy_equals_torch_and_beam_one(tmp_path):
  from underrep_jax.models import testing as model_testing
  torch_model = model_testing.save_tiny("mt5", tmp_path, vocab_size=testing.VOCAB,
                                        decoder_start_token_id=0, eos_token_id=-5)
  testing.save_tokenizer(tmp_path)
  model = model_loading.load(tmp_path)
  prompt_ids = model_loading.encode(model, PROMPTS[:2])
  kw = dict(batch_size=2, max_new_tokens=4, length_multiple=8)
  greedy = generation.Generator(model, **kw).generate_ids(prompt_ids)
  assert greedy == generation.Generator(model, greedy=False, num_beams=1,
                                        **kw).generate_ids(prompt_ids)
  for p, g in zip(prompt_ids, greedy):
    decoded = [0]
    for _ in range(4):
      with torch.inference_mode():
        logits = torch_model(input_ids=torch.tensor([p]),
                             decoder_input_ids=torch.tensor([decoded])).logits
      decoded.append(int(logits[0, -1].argmax()))
    assert g == decoded[1:]
