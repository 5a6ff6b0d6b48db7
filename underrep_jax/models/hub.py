"""Hugging Face Hub ids as model paths: `bigscience/bloomz-560m` -> a local snapshot directory.

The rule: a string (never a `pathlib.Path`) names a Hub repository only when it is not an
existing local path and looks like `org/name`: exactly one "/", both parts of letters,
digits, "-", "_", ".", not starting with "/", "~" or "." and without "..". Anything else
is a local path, returned as is, so a local directory always wins over a Hub id spelled
the same.

A Hub id resolves through `huggingface_hub.snapshot_download` into the standard HF cache
(`HF_HUB_CACHE`, else `HF_HOME/hub`, else ~/.cache/huggingface/hub), read at call time.
Only safetensors, JSON and tokenizer files are fetched: never pickles (`.bin`) nor code.
With `HF_HUB_OFFLINE=1` (or `TRANSFORMERS_OFFLINE=1`) only the cache is read.
"""

import os
import pathlib
import re

from underrep_jax import errors

# What a model needs: config and weights, tokenizers of every kind, sentence-transformers
# module folders (`1_Pooling/config.json`, `2_Dense/model.safetensors`; "*" spans "/").
ALLOW_PATTERNS = ("*.json", "*.safetensors", "*.model", "vocab.txt", "merges.txt",
                  "*.jinja")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]*[A-Za-z0-9_-]")
_TRUE = ("1", "on", "yes", "true")


class HubError(errors.ModelError, FileNotFoundError):
  """A Hub id that cannot be resolved (offline and not cached, unknown repository, ...)."""


def is_hub_id(path_or_id) -> bool:
  """True when `path_or_id` is no existing local path and looks like `org/name`."""
  if not isinstance(path_or_id, str):  # a pathlib.Path is always meant as a local path
    return False
  if os.path.exists(os.path.expanduser(path_or_id)) or ".." in path_or_id:
    return False
  return _ID.fullmatch(path_or_id) is not None


def cache_dir() -> pathlib.Path:
  """The HF hub cache the environment names now (huggingface_hub reads it once, at import)."""
  for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
    if os.environ.get(variable):
      return pathlib.Path(os.path.expandvars(os.path.expanduser(os.environ[variable])))
  home = os.environ.get("HF_HOME") or os.path.join(
      os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
      "huggingface")
  return pathlib.Path(os.path.expandvars(os.path.expanduser(home))) / "hub"


def offline() -> bool:
  return any(os.environ.get(v, "").strip().lower() in _TRUE
             for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def resolve(path_or_id, revision: str | None = None) -> pathlib.Path:
  """A local directory for a local path or a Hub id (downloaded into the cache if needed).

  `revision`: a branch, tag or commit of the Hub repository ("" or None: main); ignored
  for local paths.
  """
  if not is_hub_id(path_or_id):
    return pathlib.Path(path_or_id).expanduser()
  repo_id = str(path_or_id)
  from huggingface_hub import snapshot_download
  from huggingface_hub import errors
  is_offline = offline()
  at = f"{repo_id}@{revision}" if revision else repo_id
  try:
    snapshot = snapshot_download(repo_id, revision=revision or None, cache_dir=cache_dir(),
                                 allow_patterns=list(ALLOW_PATTERNS),
                                 local_files_only=is_offline)
  except errors.LocalEntryNotFoundError:
    if is_offline:
      raise HubError(f"{at}: not a local directory, and the Hub model is not in the cache "
                     f"{cache_dir()} while HF_HUB_OFFLINE is set; download it first "
                     f"(`hf download {repo_id}` with network) or unset HF_HUB_OFFLINE") from None
    raise HubError(f"{at}: not a local directory, and the Hub cannot be reached nor is the "
                   f"model in the cache {cache_dir()}; check the network or download it "
                   "first") from None
  except errors.RevisionNotFoundError:
    raise HubError(f"{at}: the Hub repository has no revision {revision!r}") from None
  except errors.RepositoryNotFoundError:
    raise HubError(f"{repo_id}: neither a local directory nor a Hub repository you can "
                   "access (check the spelling, or log in for gated/private models)") from None
  return pathlib.Path(snapshot)
