"""Resolves `--config.model=PATH` to a Hugging Face directory and loads it.

PATH may be a Hugging Face layout directory (config.json + safetensors + a tokenizer),
the workdir of one of our training runs, whose final model lives in `export/`, or a Hub
id `org/name` (see `models.hub`: fetched into the HF cache, or read from it offline).
"""

import pathlib

from underrep_jax import errors
from underrep_jax.models import hf
from underrep_jax.models import hub
from underrep_jax.models import tokenizer as tokenizer_lib


def resolve(path, revision: str | None = None) -> pathlib.Path:
  """The HF directory for `path`; errors name what is missing."""
  if not str(path):
    raise errors.ConfigError("no model given: set --config.model to an HF directory, a "
                             "training workdir or a Hub id")
  path = hub.resolve(path if isinstance(path, str) else pathlib.Path(path), revision)
  if not path.is_dir():
    raise errors.ModelError(f"model path {path} is not a directory")
  if not (path / "config.json").is_file() and (path / "export" / "config.json").is_file():
    path = path / "export"
  if not (path / "config.json").is_file():
    raise errors.ModelError(f"{path}: no config.json here nor in {path / 'export'}; expected "
                            "a Hugging Face model directory or a training workdir with export/")
  if tokenizer_lib.find(path) is None:
    raise errors.ModelError(f"{path}: no {tokenizer_lib.looked_for()}; evaluation needs the "
                            "model's tokenizer next to its weights (save it with the checkpoint)")
  return path


def load(path, dtype: str = "float32", revision: str | None = None) -> hf.PretrainedModel:
  """Loads the resolved model; its tokenizer is checked to exist up front."""
  return hf.load(resolve(path, revision), dtype=dtype)


def encode(model: hf.PretrainedModel, texts) -> list[list[int]]:
  """Token ids without special tokens (prompt and answer are joined by us)."""
  return model.tokenizer.encode_ids(texts)
