"""Shared test set-up: 8 simulated CPU devices and the real data directory."""

import os
import pathlib

# Must happen before jax is imported anywhere: every test sees 8 CPU devices, so the
# sharding tests can build (8,1,1), (2,4,1) and (2,2,2) meshes in-process.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _find_data_dir() -> pathlib.Path:
  env = os.environ.get("UNDERREP_DATA_DIR")
  if env:
    return pathlib.Path(env).resolve()
  beside = REPO_ROOT.parent / "shared" / "data"
  if beside.is_dir():
    os.environ["UNDERREP_DATA_DIR"] = str(beside)
    return beside
  raise RuntimeError(
      "The tests read the real datasets: set UNDERREP_DATA_DIR to a directory with the "
      "upstream layouts (nusax/, nusa-writes/, sib-200/, euvalues/, speechmap/).")


DATA_DIR = _find_data_dir()


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
  return DATA_DIR
