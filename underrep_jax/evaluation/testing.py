"""A tiny random BLOOM with a real byte-level BPE tokenizer, for tests and benchmarks.

Built with transformers (save_pretrained, safetensors) and the `tokenizers` library, so
the evaluation jobs can run end to end without downloads. torch is imported only here.
"""

import pathlib

from underrep_jax.data import prompts as prompt_lib
from underrep_jax.models import testing as model_testing

VOCAB = 384


def _training_text() -> list[str]:
  lines = []
  for by_language in prompt_lib.CLASSIFICATION_PROMPTS.values():
    for templates in by_language.values():
      lines.extend(templates)
  for by_language in prompt_lib.VERBALIZERS.values():
    for words in by_language.values():
      lines.extend(" " + w for w in words.values())
  lines += ["Sundanese Javanese Indonesian English means positive negative neutral"] * 3
  return lines


def save_tokenizer(directory) -> None:
  """A byte-level BPE tokenizer.json (any text encodes; no unknown tokens)."""
  import tokenizers
  from tokenizers import decoders, models, pre_tokenizers, trainers
  tokenizer = tokenizers.Tokenizer(models.BPE())
  tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tokenizer.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<pad>", "<s>", "</s>"],
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                show_progress=False)
  tokenizer.train_from_iterator(_training_text(), trainer)
  tokenizer.save(str(pathlib.Path(directory) / "tokenizer.json"))


def save_tiny_lm(directory, seed: int = 0, **overrides):
  """Saves a tiny random BLOOM (pad 0, eos 2) with its tokenizer; returns the torch model."""
  directory = pathlib.Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  kwargs = dict(vocab_size=VOCAB, pad_token_id=0, bos_token_id=1, eos_token_id=2)
  model = model_testing.save_tiny("bloom", directory, seed, **{**kwargs, **overrides})
  save_tokenizer(directory)
  return model
