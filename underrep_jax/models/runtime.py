"""The model runtime: from a config's `model` section to a module, its parameters in the
shardings the caller asks for, the tokenizer and the special ids.

Every job reaches a model through `ModelSource`: training jobs build the module (from a
checkpoint or from scratch) and hand the loop `params_loader()`, evaluation jobs
`load(topology)` a `hf.PretrainedModel` whose public calls (`logits`, `hidden_states`,
`embed`, and `call` for the scorer's and generator's jitted functions) run under that
topology. The `model` section is the same in every job (`config_schema.model`):

    source = runtime.ModelSource.from_config(config.model)
    module = source.module(vocab_size=...)           # no weights read
    model = source.load(topology)                    # params placed on the topology's mesh

A Hub id is resolved to its cached snapshot once, in `from_config`; a training workdir
stands for its `export/` directory.
"""

import dataclasses
import pathlib
from typing import Any

import flax.linen as nn

from underrep_jax import errors
from underrep_jax import parallel
from underrep_jax.models import hf
from underrep_jax.models import hub
from underrep_jax.models import registry


def resolve_path(path, revision: str | None = None) -> pathlib.Path:
  """The HF directory of `path`: a directory with config.json, a training workdir (its
  `export/`), or a Hub id (fetched into the HF cache, or read from it offline)."""
  path = hub.resolve(path if isinstance(path, str) else pathlib.Path(path), revision)
  if not path.is_dir():
    raise errors.ModelError(f"model path {path} is not a directory")
  if not (path / "config.json").is_file() and (path / "export" / "config.json").is_file():
    path = path / "export"
  if not (path / "config.json").is_file():
    raise errors.ModelError(f"{path}: no config.json here nor in {path / 'export'}; expected "
                            "a Hugging Face model directory or a training workdir with export/")
  return path


@dataclasses.dataclass(frozen=True)
class ModelSource:
  """Where a job's model comes from and how it computes (a config's `model` section).

  `path` is the resolved checkpoint directory, or None for `family` built from
  `scratch` fields.
  """
  path: pathlib.Path | None
  family: str
  scratch: dict[str, Any]
  dtype: str = "float32"
  param_dtype: str = "float32"
  remat: bool = False
  scan_layers: bool = False
  attention: str = "xla"

  @classmethod
  def from_config(cls, model_config, default_path=None) -> "ModelSource":
    """From `config.model`; an empty `path` falls back to `default_path` (a job's
    default checkpoint, e.g. UniVaR's all-MiniLM-L6-v2), else builds from scratch."""
    path = model_config.path or default_path
    resolved = resolve_path(path, model_config.revision or None) if path else None
    family = model_config.family
    if resolved is not None:
      family = registry.family_for_model_type(hf.read_config(resolved)["model_type"]).name
    return cls(path=resolved, family=family, scratch=dict(model_config.scratch.to_dict()),
               dtype=model_config.dtype, param_dtype=model_config.param_dtype,
               remat=bool(model_config.remat), scan_layers=bool(model_config.scan_layers),
               attention=str(model_config.attention))

  @property
  def kind(self) -> str:
    """decoder, encoder_decoder or encoder: what the family is (`registry.Family`)."""
    return registry.get_family(self.family).kind

  @property
  def _options(self) -> dict[str, Any]:
    return dict(dtype=self.dtype, param_dtype=self.param_dtype, remat=self.remat,
                scan_layers=self.scan_layers, attention=self.attention)

  def module(self, vocab_size: int | None = None) -> nn.Module:
    """The Flax module, without reading any weight. From scratch, `vocab_size` (the
    job's vocabulary) completes the `scratch` fields."""
    if self.path is not None:
      return hf.build_module(self.path, **self._options)
    if vocab_size is None:
      raise errors.ConfigError(f"model.path is empty: a from-scratch {self.family} needs the "
                               "vocabulary size of the job's vocabulary")
    return registry.build(self.family, dict(self.scratch, vocab_size=int(vocab_size)),
                          **self._options)

  def _checkpoint(self) -> pathlib.Path:
    if self.path is None:
      raise errors.ConfigError(f"model.path is empty: a from-scratch {self.family} has no "
                               "checkpoint to load; set --config.model.path")
    return self.path

  def load(self, topology: parallel.Topology | None = None, shardings=None
           ) -> hf.PretrainedModel:
    """The checkpoint with its params in `shardings` (a tree like the params) or in the
    shardings their logical names get on `topology` (one device without either)."""
    return hf.load(self._checkpoint(), topology=topology, shardings=shardings,
                   **self._options)

  def params_loader(self):
    """`load_params(param_shardings)` for `train.loop`: the checkpoint's tensors placed
    straight into the shardings of the loop's train state."""
    path = self._checkpoint()
    options = self._options

    def load_params(param_shardings):
      return hf.load(path, shardings=param_shardings, **options).params

    return load_params

  def tokenizer(self):
    """The checkpoint's tokenizer (`models.tokenizer`), without reading weights."""
    return hf.load_tokenizer(self._checkpoint())

  def special_ids(self) -> hf.SpecialIds:
    """pad / eos / bos / decoder-start ids: config.json first, then the tokenizer's
    declared tokens (`hf.special_ids`), as `PretrainedModel.ids` reads them."""
    path = self._checkpoint()
    return hf.checkpoint_ids(hf.read_config(path), path)
