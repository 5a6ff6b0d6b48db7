"""Pickled PyTorch checkpoints -> safetensors, once, so `hf.load` can read them.

  python -m underrep_jax.models.convert DIR [--out OUT]

Reads `pytorch_model.bin` (or the shards named by `pytorch_model.bin.index.json`) with
`torch.load(weights_only=True)`, which unpickles tensors and plain containers only, never
arbitrary objects, and writes `model.safetensors` (or `model-0000i-of-0000n.safetensors`
shards with `model.safetensors.index.json`) beside them, or into OUT with the directory's
other files. The pickles are left in place; `hf.load` prefers the safetensors.

safetensors stores no aliasing, so tensors that share memory (tied embeddings:
`lm_head.weight` = the input embedding, T5's `shared` = `encoder/decoder.embed_tokens`)
are stored once, under the name a loader needs (see `_preference`); the dropped names
are recorded in the file's metadata as `dropped -> kept`, as safetensors' own converter
does. Tensors that merely overlap are stored as separate copies.

torch is imported only here, from the optional extra: pip install 'underrep_jax[convert]'.
"""

import argparse
import json
import pathlib
import shutil
import sys

PICKLE = "pytorch_model.bin"
PICKLE_INDEX = "pytorch_model.bin.index.json"
SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
# Tied names that transformers re-creates from the tensor they alias, so they are the ones
# dropped from a group of aliases.
_TIED_MARKERS = ("lm_head.", "embed_tokens.", "predictions.decoder.", "embed_out.")


class ConversionError(ValueError):
  """A directory that cannot be converted (nothing to convert, torch missing, bad shard)."""


def _torch():
  try:
    import torch
  except ImportError:
    raise ConversionError("converting pickled checkpoints needs torch: pip install "
                          "'underrep_jax[convert]' (or torch==2.13.0)") from None
  return torch


def _preference(name: str) -> tuple:
  """Sort key: within a group of aliases the first is kept (not a tied copy; then shortest)."""
  return (any(marker in name for marker in _TIED_MARKERS), len(name), name)


def _storage_key(tensor):
  return (tensor.untyped_storage().data_ptr(), tensor.device.type)


def deduplicate(state_dict: dict) -> tuple[dict, dict[str, str]]:
  """(tensors safetensors can store, {dropped name: kept name}) for one shard.

  Exact aliases (same storage, offset, shape and strides) keep one name; any other tensor
  that shares storage is copied, so no two stored tensors share memory.
  """
  groups: dict = {}
  for name, tensor in state_dict.items():
    groups.setdefault(_storage_key(tensor), []).append(name)
  out, dropped = {}, {}
  for names in groups.values():
    kept_views = []
    for name in sorted(names, key=_preference):
      tensor = state_dict[name]
      view = (tensor.storage_offset(), tuple(tensor.shape), tuple(tensor.stride()), tensor.dtype)
      alias = next((kept for kept, kept_view in kept_views if kept_view == view), None)
      if alias is not None:
        dropped[name] = alias
        continue
      out[name] = tensor.contiguous() if not kept_views else tensor.clone().contiguous()
      kept_views.append((name, view))
  return out, dropped


def _load_pickle(file: pathlib.Path) -> dict:
  torch = _torch()
  try:
    loaded = torch.load(file, weights_only=True, map_location="cpu")
  except Exception as error:  # pylint: disable=broad-except
    raise ConversionError(f"{file}: not a weights-only PyTorch checkpoint "
                          f"({type(error).__name__}: {str(error).splitlines()[0]})") from None
  if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
    loaded = loaded["state_dict"]
  if not isinstance(loaded, dict) or not all(
      isinstance(v, torch.Tensor) for v in loaded.values()):
    raise ConversionError(f"{file}: expected a state dict of tensors, got {type(loaded).__name__}")
  return loaded


def _write_shard(pickle_file: pathlib.Path, out_file: pathlib.Path) -> tuple[list[str], int]:
  """Converts one pickle file; returns the stored names and their total bytes."""
  from safetensors.torch import load_file
  from safetensors.torch import save_file
  state_dict = _load_pickle(pickle_file)
  tensors, dropped = deduplicate(state_dict)
  save_file(tensors, str(out_file), metadata={"format": "pt", **dropped})
  reloaded = load_file(str(out_file))
  for name, tensor in state_dict.items():  # read back: every name, aliases included
    if not _torch().equal(reloaded[dropped.get(name, name)], tensor):
      raise ConversionError(f"{out_file}: {name} differs after conversion")
  return list(tensors), sum(t.numel() * t.element_size() for t in tensors.values())


def convert(directory, out_dir=None) -> pathlib.Path:
  """Writes safetensors for DIRECTORY's pickled weights; returns the directory written."""
  directory = pathlib.Path(directory)
  out = pathlib.Path(out_dir) if out_dir is not None else directory
  if not directory.is_dir():
    raise ConversionError(f"{directory}: not a directory")
  index_file = directory / PICKLE_INDEX
  if not index_file.is_file() and not (directory / PICKLE).is_file():
    raise ConversionError(f"{directory}: no {PICKLE} or {PICKLE_INDEX} to convert")
  _torch()  # before anything is written (safetensors.torch needs it too)
  out.mkdir(parents=True, exist_ok=True)
  if out.resolve() != directory.resolve():  # config, tokenizer, ...: everything not pickled
    for file in directory.iterdir():
      if file.is_file() and not file.name.startswith("pytorch_model"):
        shutil.copyfile(file, out / file.name)
  if not index_file.is_file():
    _write_shard(directory / PICKLE, out / SAFETENSORS)
    return out
  weight_map = json.loads(index_file.read_text())["weight_map"]
  shards = sorted(set(weight_map.values()))
  new_map, total = {}, 0
  for i, shard in enumerate(shards):
    name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
    stored, nbytes = _write_shard(directory / shard, out / name)
    new_map.update({tensor: name for tensor in stored})
    total += nbytes
  index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(new_map.items()))}
  (out / SAFETENSORS_INDEX).write_text(json.dumps(index, indent=2) + "\n")
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m underrep_jax.models.convert",
                                   description=__doc__.split("\n\n")[0])
  parser.add_argument("directory", help="HF checkpoint directory with pytorch_model.bin")
  parser.add_argument("--out", default=None, help="write here instead (other files copied)")
  args = parser.parse_args(argv)
  try:
    out = convert(args.directory, args.out)
  except ConversionError as error:
    print(f"error: {error}", file=sys.stderr)
    return 1
  print(f"wrote safetensors to {out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
