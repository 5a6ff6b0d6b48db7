"""Tiny random Hugging Face checkpoints and batches, for tests and benchmarks.

Builds transformers' PyTorch models from small configs and saves them as safetensors,
so parity checks need neither the Hub nor a network. transformers and torch are imported
only when these functions run.
"""

import pathlib
from typing import Any

import numpy as np

VOCAB = 128

# name -> (transformers config class, model class, config kwargs).
TINY = {
    "bloom": ("BloomConfig", "BloomForCausalLM",
              dict(vocab_size=VOCAB, hidden_size=64, n_layer=2, n_head=4)),
    "llama": ("LlamaConfig", "LlamaForCausalLM",
              dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, rope_theta=10000.0,
                   rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 8})),
    "mistral": ("MistralConfig", "MistralForCausalLM",
                dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128,
                     num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                     sliding_window=5)),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM",
              dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)),
    "xglm": ("XGLMConfig", "XGLMForCausalLM",
             dict(vocab_size=VOCAB, d_model=64, ffn_dim=128, num_layers=2, attention_heads=4,
                  dropout=0.0, attention_dropout=0.0)),
    "mt5": ("MT5Config", "MT5ForConditionalGeneration",
            dict(vocab_size=VOCAB, d_model=64, d_kv=16, d_ff=128, num_layers=2,
                 num_decoder_layers=2, num_heads=4, relative_attention_num_buckets=8,
                 relative_attention_max_distance=16, tie_word_embeddings=False,
                 dropout_rate=0.0)),
    "bert": ("BertConfig", "BertModel",
             dict(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=128, max_position_embeddings=64)),
    "xlm-roberta": ("XLMRobertaConfig", "XLMRobertaModel",
                    dict(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2,
                         num_attention_heads=4, intermediate_size=128,
                         max_position_embeddings=64, pad_token_id=1)),
}


def make_torch_model(name: str, seed: int = 0, **overrides: Any):
  """A tiny random transformers model (eval mode, float32)."""
  import torch
  import transformers
  config_cls, model_cls, kwargs = TINY[name]
  torch.manual_seed(seed)
  config = getattr(transformers, config_cls)(**{**kwargs, **overrides})
  model = getattr(transformers, model_cls)(config).eval()
  with torch.no_grad():  # random norms and biases, so parity checks see them
    for param_name, param in model.named_parameters():
      if param.ndim == 1:
        param.add_(0.1 * torch.randn_like(param))
  return model


def save_tiny(name: str, directory, seed: int = 0, **overrides: Any):
  """Saves a tiny random model as safetensors into `directory`; returns the torch model."""
  model = make_torch_model(name, seed, **overrides)
  model.save_pretrained(pathlib.Path(directory), safe_serialization=True)
  return model


def padded_batch(lengths: list[int], length: int, vocab: int = VOCAB, left: bool = False,
                 pad_id: int = 0, seed: int = 0, low: int = 3) -> tuple[np.ndarray, np.ndarray]:
  """Random ids [B, length] and their 0/1 mask, right- (or left-) padded with `pad_id`."""
  rng = np.random.default_rng(seed)
  ids = np.full((len(lengths), length), pad_id, np.int32)
  mask = np.zeros((len(lengths), length), np.int32)
  for row, n in enumerate(lengths):
    span = slice(length - n, length) if left else slice(0, n)
    ids[row, span] = rng.integers(low, vocab, n)
    mask[row, span] = 1
  return ids, mask


def torch_forward(model, input_ids, attention_mask, decoder_input_ids=None,
                  position_ids=None) -> np.ndarray:
  """transformers' output in our terms: logits (LMs) or last hidden states (encoders)."""
  import torch
  kwargs = {"input_ids": torch.as_tensor(np.asarray(input_ids), dtype=torch.long),
            "attention_mask": torch.as_tensor(np.asarray(attention_mask), dtype=torch.long)}
  if decoder_input_ids is not None:
    kwargs["decoder_input_ids"] = torch.as_tensor(np.asarray(decoder_input_ids), dtype=torch.long)
  if position_ids is not None:
    kwargs["position_ids"] = torch.as_tensor(np.asarray(position_ids), dtype=torch.long)
  with torch.inference_mode():
    out = model(**kwargs)
  return (out.logits if hasattr(out, "logits") else out.last_hidden_state).float().numpy()


def our_forward(model, input_ids, attention_mask, decoder_input_ids=None) -> np.ndarray:
  """The same quantity from an `hf.PretrainedModel`."""
  if model.kind == "encoder":
    return np.asarray(model.hidden_states(input_ids, attention_mask))
  if model.kind == "encoder_decoder":
    return np.asarray(model.logits(input_ids, attention_mask, decoder_input_ids))
  return np.asarray(model.logits(input_ids, attention_mask))
