"""`--config.model.path=PATH` for evaluation: a model that can be prompted.

PATH may be a Hugging Face layout directory (config.json + safetensors + a tokenizer),
the workdir of one of our training runs, whose final model lives in `export/`, or a Hub
id `org/name` (see `models.hub`). Resolution and loading are the model runtime's
(`models.runtime`); evaluation adds only that the tokenizer must be there.
"""

import pathlib

from underrep_jax import errors
from underrep_jax import parallel
from underrep_jax.models import hf
from underrep_jax.models import runtime
from underrep_jax.models import tokenizer as tokenizer_lib


NO_MODEL = ("no model given: set --config.model.path to an HF directory, a training "
            "workdir or a Hub id")


def _require_tokenizer(path: pathlib.Path) -> pathlib.Path:
  if tokenizer_lib.find(path) is None:
    raise errors.ModelError(f"{path}: no {tokenizer_lib.looked_for()}; evaluation needs the "
                            "model's tokenizer next to its weights (save it with the checkpoint)")
  return path


def resolve(path, revision: str | None = None) -> pathlib.Path:
  """The HF directory for `path`; errors name what is missing."""
  if not str(path):
    raise errors.ConfigError(NO_MODEL)
  return _require_tokenizer(runtime.resolve_path(path, revision))


def source(model_config) -> runtime.ModelSource:
  """The runtime's source of a config's `model` section, checked to be promptable."""
  if not model_config.path:
    raise errors.ConfigError(NO_MODEL)
  model_source = runtime.ModelSource.from_config(model_config)
  _require_tokenizer(model_source.path)
  return model_source


def load(path, dtype: str = "float32", revision: str | None = None,
         topology: parallel.Topology | None = None) -> hf.PretrainedModel:
  """Loads the resolved model; its tokenizer is checked to exist up front."""
  return hf.load(resolve(path, revision), dtype=dtype, topology=topology)


def encode(model: hf.PretrainedModel, texts) -> list[list[int]]:
  """Token ids without special tokens (prompt and answer are joined by us)."""
  return model.tokenizer.encode_ids(texts)


def check_token_ids(model, rows_by_kind: dict, desc: str) -> None:
  """Ids past the embedding table would be clamped by XLA's gather, not refused: a
  tokenizer that does not belong to the model is one clear error instead."""
  size = (getattr(model, "hf_config", None) or {}).get("vocab_size")
  if not size:
    return
  name = str(getattr(model, "source", None) or getattr(model, "family", "the model"))
  for kind, rows in rows_by_kind.items():
    for i, row in enumerate(rows):
      bad = [t for t in row if not 0 <= int(t) < size]
      if bad:
        raise errors.ModelError(f"{name}: {desc} {kind} {i} has token id {bad[0]} outside "
                                f"the model's vocabulary of {size}; the tokenizer does not "
                                "belong to this model")
