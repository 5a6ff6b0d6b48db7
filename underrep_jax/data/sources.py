"""Where dataset files come from: a local data directory, or a pinned, verified download.

Every reader asks `resolve(dataset, relpath)` for a file in the upstream repository's own
layout. Two modes:
- A data directory is set (`set_data_dir`, which the launcher calls with
  `--config.data_dir`, else the env var `UNDERREP_DATA_DIR`): the file is
  `<data_dir>/<dataset>/<relpath>`, e.g. a `git clone` of each upstream repository.
- No data directory: the file is downloaded from the upstream GitHub repository at the
  commit pinned in `upstream_files.json`, checked against the sha256 recorded there, and
  kept in a cache (`~/.cache/underrep_jax`, or env `UNDERREP_CACHE_DIR`). Mirrors and tests
  replace `https://raw.githubusercontent.com` with env `UNDERREP_DOWNLOAD_BASE_URL`.

A local file of a pinned dataset (its folder has no SOURCE_COMMIT, or the pinned one) is
checked against the table too, once per process: a truncated or edited copy is a warning
naming the file (`set_verify("warn")`, the default), a DataError with "strict"
(`--config.data.verify=strict`), or not checked with "off".

The pinned table (repo, commit, size and sha256 of every file) is written from a local
copy of the data with
  python -m underrep_jax.data.sources --write-table /path/to/data
and also lets readers list files without a directory listing, which downloads lack.
"""

import argparse
import functools
import hashlib
import http.client
import json
import os
import pathlib
import tempfile
import urllib.error
import urllib.parse
import urllib.request

from absl import logging
import tqdm

from underrep_jax.data.errors import DataError

# Dataset name (the folder under the data directory) -> upstream GitHub "owner/repo".
REPOSITORIES: dict[str, str] = {
    "nusax": "IndoNLP/nusax",
    "nusa-writes": "IndoNLP/nusa-writes",
    "sib-200": "dadelani/sib-200",
    "euvalues": "Telefonica-Scientific-Research/EUValues",
    "speechmap": "xlr8harder/speechmap-data",
}
DATASETS = tuple(REPOSITORIES)

DATA_DIR_ENV = "UNDERREP_DATA_DIR"
CACHE_DIR_ENV = "UNDERREP_CACHE_DIR"
BASE_URL_ENV = "UNDERREP_DOWNLOAD_BASE_URL"
DEFAULT_BASE_URL = "https://raw.githubusercontent.com"
DEFAULT_CACHE_DIR = pathlib.Path("~/.cache/underrep_jax")

TABLE_PATH = pathlib.Path(__file__).with_name("upstream_files.json")
# Files in a data folder that are not part of the upstream repository.
_LOCAL_ONLY_FILES = ("SOURCE_COMMIT",)
_DOWNLOAD_TIMEOUT_S = 60
_CHUNK_BYTES = 1 << 16
_PROGRESS_MIN_BYTES = 1 << 20

_data_dir_override: pathlib.Path | None = None
VERIFY_MODES = ("warn", "strict", "off")
_verify_mode = "warn"
# Local files checked in this process: (path, size, mtime) -> problem or None.
_checked_local_files: dict[tuple[str, int, int], str | None] = {}
# Cache files whose sha256 was checked in this process; later calls only check the size.
_verified_cache_files: set[pathlib.Path] = set()


def set_data_dir(path: str | os.PathLike[str] | None) -> None:
  """Makes `path` the data directory (over `UNDERREP_DATA_DIR`); None or "" unsets it."""
  global _data_dir_override
  _data_dir_override = pathlib.Path(path).expanduser() if path else None


def set_verify(mode: str) -> None:
  """How local data files are checked against the pinned sha256 sums (see the docstring)."""
  global _verify_mode
  if mode not in VERIFY_MODES:
    from underrep_jax.errors import ConfigError
    raise ConfigError(f"data.verify={mode!r}: expected one of {', '.join(VERIFY_MODES)}")
  _verify_mode = mode


def data_dir() -> pathlib.Path | None:
  """The local data directory, or None when files are to be downloaded."""
  if _data_dir_override is not None:
    return _data_dir_override
  env = os.environ.get(DATA_DIR_ENV)
  return pathlib.Path(env).expanduser() if env else None


def _data_dir_origin() -> str:
  if _data_dir_override is not None:
    return "set by --config.data_dir (sources.set_data_dir)"
  return f"set by the environment variable {DATA_DIR_ENV}"


def cache_dir() -> pathlib.Path:
  """Root of the download cache: `UNDERREP_CACHE_DIR` or ~/.cache/underrep_jax."""
  env = os.environ.get(CACHE_DIR_ENV)
  return pathlib.Path(env).expanduser() if env else DEFAULT_CACHE_DIR.expanduser()


def _check_dataset(dataset: str) -> None:
  if dataset not in REPOSITORIES:
    raise DataError(f"unknown dataset {dataset!r}; known datasets: {', '.join(DATASETS)}")


def _check_relpath(relpath: str) -> None:
  """Keeps paths inside the dataset folder (and the cache): relative, no "..", no "\\"."""
  parts = relpath.split("/")
  if not relpath or relpath.startswith("/") or "\\" in relpath or any(
      part in ("", ".", "..") for part in parts):
    raise DataError(f"bad file path {relpath!r}: expected a relative path with '/' "
                    "separators inside the dataset, such as 'datasets/mt/train.csv'")


@functools.cache
def _table() -> dict:
  try:
    with open(TABLE_PATH, encoding="utf-8") as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise DataError(f"cannot read the pinned file table {TABLE_PATH}: {e}; regenerate it "
                    "with python -m underrep_jax.data.sources --write-table DATA_DIR") from e


def _dataset_table(dataset: str) -> dict:
  _check_dataset(dataset)
  try:
    return _table()[dataset]
  except KeyError:
    raise DataError(f"{TABLE_PATH} has no entry for dataset {dataset!r}; regenerate it with "
                    "python -m underrep_jax.data.sources --write-table DATA_DIR") from None


def upstream(dataset: str) -> tuple[str, str]:
  """The pinned ("owner/repo", full commit hash) of a dataset."""
  entry = _dataset_table(dataset)
  return entry["repo"], entry["commit"]


def list_files(dataset: str, prefix: str = "") -> list[str]:
  """Sorted relpaths of the pinned files of `dataset` that start with `prefix`."""
  return sorted(p for p in _dataset_table(dataset)["files"] if p.startswith(prefix))


def file_info(dataset: str, relpath: str) -> dict:
  """{"size": bytes, "sha256": hex} of a pinned file; DataError if it is not pinned."""
  files = _dataset_table(dataset)["files"]
  if relpath not in files:
    repo, commit = upstream(dataset)
    raise DataError(f"{dataset}/{relpath} is not in the pinned file table {TABLE_PATH} "
                    f"({repo} @ {commit}), so it cannot be downloaded and verified; "
                    f"point {DATA_DIR_ENV} (or --config.data_dir) at a local copy instead")
  return files[relpath]


def resolve(dataset: str, relpath: str) -> pathlib.Path:
  """Local path of one file of `dataset`, downloading it first if there is no data dir."""
  _check_dataset(dataset)
  _check_relpath(relpath)
  root = data_dir()
  if root is None:
    return _cached_download(dataset, relpath)
  path = root / dataset / relpath
  if not path.is_file():
    raise DataError(f"missing data file {path}: the data directory {root} was "
                    f"{_data_dir_origin()}; it should hold the upstream layout of "
                    f"{REPOSITORIES[dataset]} in {root / dataset}. Unset {DATA_DIR_ENV} and "
                    "--config.data_dir to download the pinned files instead.")
  if _verify_mode != "off":
    _verify_local(dataset, relpath, path, root / dataset)
  return path


def _pinned_layout(dataset: str, folder: pathlib.Path) -> bool:
  """Whether a local dataset folder claims the pinned commit (or names none)."""
  try:
    commit = (folder / "SOURCE_COMMIT").read_text(encoding="utf-8").strip()
  except OSError:
    return True
  return commit == upstream(dataset)[1]


def _verify_local(dataset: str, relpath: str, path: pathlib.Path,
                  folder: pathlib.Path) -> None:
  """Compares a local file with its pinned size and sha256 (hashed once per process)."""
  files = _dataset_table(dataset)["files"]
  if relpath not in files or not _pinned_layout(dataset, folder):
    return
  stat = path.stat()
  key = (str(path), stat.st_size, stat.st_mtime_ns)
  if key not in _checked_local_files:
    info = files[relpath]
    problem = None
    if stat.st_size != info["size"]:
      problem = f"{stat.st_size} bytes, the pinned file has {info['size']}"
    elif sha256_file(path) != info["sha256"]:
      problem = f"sha256 differs from the pinned {info['sha256'][:12]}..."
    _checked_local_files[key] = problem
    if problem and _verify_mode == "warn":
      logging.warning("Data file %s does not match %s @ %s (%s): truncated or edited? "
                      "(--config.data.verify=strict makes this an error)", path,
                      REPOSITORIES[dataset], upstream(dataset)[1][:12], problem)
  problem = _checked_local_files[key]
  if problem and _verify_mode == "strict":
    raise DataError(f"data file {path} does not match {REPOSITORIES[dataset]} @ "
                    f"{upstream(dataset)[1][:12]}: {problem} (data.verify=strict)")


def sha256_file(path: pathlib.Path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(_CHUNK_BYTES), b""):
      digest.update(chunk)
  return digest.hexdigest()


def download_url(dataset: str, relpath: str) -> str:
  repo, commit = upstream(dataset)
  base = os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
  return f"{base.rstrip('/')}/{repo}/{commit}/{urllib.parse.quote(relpath)}"


def _cached_download(dataset: str, relpath: str) -> pathlib.Path:
  """Cache path of a pinned file, downloaded and verified unless a good copy is there."""
  info = file_info(dataset, relpath)
  _, commit = upstream(dataset)
  path = cache_dir() / dataset / commit / relpath
  if path.is_file():
    if path.stat().st_size == info["size"] and (
        path in _verified_cache_files or sha256_file(path) == info["sha256"]):
      _verified_cache_files.add(path)
      return path
    logging.warning("Cached %s does not match its pinned size/sha256; downloading it again.",
                    path)
    path.unlink()
  _download(download_url(dataset, relpath), path, info)
  _verified_cache_files.add(path)
  return path


def _download(url: str, path: pathlib.Path, info: dict) -> None:
  """Fetches `url` into `path` atomically; only a file with the pinned sha256 lands there."""
  logging.info("Downloading %s (%d bytes) to %s", url, info["size"], path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp_fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  tmp = pathlib.Path(tmp_name)
  digest = hashlib.sha256()
  try:
    with os.fdopen(tmp_fd, "wb") as out, tqdm.tqdm(
        total=info["size"], unit="B", unit_scale=True, desc=path.name,
        disable=info["size"] < _PROGRESS_MIN_BYTES) as progress:
      try:
        with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
          for chunk in iter(lambda: response.read(_CHUNK_BYTES), b""):
            out.write(chunk)
            digest.update(chunk)
            progress.update(len(chunk))
      except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        raise DataError(
            f"download of {url} failed ({e}). If this machine is offline, point "
            f"{DATA_DIR_ENV} (or --config.data_dir) at a local copy of the datasets in "
            "their upstream layout, e.g. a git clone of each repository.") from e
    actual = digest.hexdigest()
    if actual != info["sha256"]:
      raise DataError(f"checksum mismatch for {url}: expected sha256 {info['sha256']}, got "
                      f"{actual}; the file was not kept. The server or mirror "
                      f"({BASE_URL_ENV}) serves different content than the pinned commit.")
    os.replace(tmp, path)
  finally:
    tmp.unlink(missing_ok=True)


def build_table(root: str | os.PathLike[str]) -> dict:
  """The pinned file table of a local data directory: per dataset repo, commit and files.

  Each dataset folder must hold `SOURCE_COMMIT` (the full upstream commit hash); every
  other file in it is recorded with its size and sha256.
  """
  root = pathlib.Path(root)
  table = {}
  for dataset, repo in REPOSITORIES.items():
    folder = root / dataset
    commit_file = folder / "SOURCE_COMMIT"
    if not commit_file.is_file():
      raise DataError(f"missing {commit_file}: each dataset folder needs the full upstream "
                      "commit hash in SOURCE_COMMIT")
    commit = commit_file.read_text(encoding="utf-8").strip()
    if len(commit) != 40 or any(c not in "0123456789abcdef" for c in commit):
      raise DataError(f"{commit_file}: expected a full 40-hex-digit commit, got {commit!r}")
    files = {}
    for path in sorted(folder.rglob("*")):
      if path.is_file() and path.name not in _LOCAL_ONLY_FILES:
        relpath = path.relative_to(folder).as_posix()
        files[relpath] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
    table[dataset] = {"repo": repo, "commit": commit, "files": files}
  return table


def write_table(root: str | os.PathLike[str], out: pathlib.Path = TABLE_PATH) -> None:
  table = build_table(root)
  out.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
  _table.cache_clear()
  counts = ", ".join(f"{d}: {len(t['files'])}" for d, t in table.items())
  print(f"wrote {out} ({counts} files)")


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--write-table", metavar="DATA_DIR", required=True,
                      help="write upstream_files.json from this local data directory")
  args = parser.parse_args(argv)
  write_table(args.write_table)


if __name__ == "__main__":
  main()
