"""Hub ids (`org/name`) resolve through the standard HF cache, offline, without a network."""

import fnmatch
import hashlib
import os
import pathlib
import shutil

import numpy as np
import pytest

from underrep_jax.data import vocabularies
from underrep_jax.evaluation import model_loading
from underrep_jax.evaluation import testing as eval_testing
from underrep_jax.models import hf
from underrep_jax.models import hub

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


def _cache_snapshot(cache: pathlib.Path, repo_id: str, source: pathlib.Path, commit: str,
                    ref: str = "main") -> pathlib.Path:
  """Writes `source`'s files into huggingface_hub's cache layout, as a download would:
  models--org--name/blobs/<hash>, snapshots/<commit>/<file> -> ../../blobs/<hash>,
  refs/<ref> holding the commit."""
  repo = cache / ("models--" + repo_id.replace("/", "--"))
  snapshot = repo / "snapshots" / commit
  for file in sorted(p for p in source.rglob("*") if p.is_file()):
    data = file.read_bytes()
    blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    link = snapshot / file.relative_to(source)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(blob, link.parent))
  (repo / "refs").mkdir(parents=True, exist_ok=True)
  (repo / "refs" / ref).write_text(commit)
  return snapshot


@pytest.fixture()
def offline_cache(tmp_path, monkeypatch):
  monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
  monkeypatch.delenv("HF_HUB_CACHE", raising=False)
  monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  monkeypatch.chdir(tmp_path)  # "org/tiny-lm" must not exist as a relative path
  return tmp_path / "hf_home" / "hub"


def test_hub_id_rule(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert hub.is_hub_id("bigscience/bloomz-560m") and hub.is_hub_id("org/name.v1_2")
  for local in ("/abs/path", "./org/name", "~/org/name", "org/name/sub", "name", "../x/y",
                "org/..", pathlib.Path("org/name"), ""):
    assert not hub.is_hub_id(local), local
  (tmp_path / "org" / "name").mkdir(parents=True)
  assert not hub.is_hub_id("org/name")  # an existing local directory wins
  assert hub.resolve("org/name") == pathlib.Path("org/name")
  monkeypatch.setenv("HF_HOME", "/x/home")
  monkeypatch.delenv("HF_HUB_CACHE", raising=False)
  monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
  assert hub.cache_dir() == pathlib.Path("/x/home/hub")
  monkeypatch.setenv("HF_HUB_CACHE", "/y/cache")
  assert hub.cache_dir() == pathlib.Path("/y/cache")


def test_load_by_hub_id_from_the_offline_cache(tmp_path, offline_cache):
  source = tmp_path / "source"
  eval_testing.save_tiny_lm(source)  # BLOOM + tokenizer.json
  snapshot = _cache_snapshot(offline_cache, "org/tiny-lm", source, COMMIT)

  assert hub.resolve("org/tiny-lm") == snapshot
  local = hf.load(source)
  by_id = hf.load("org/tiny-lm")
  assert by_id.source == snapshot
  ids = np.array([[5, 9, 17, 3]], np.int32)
  np.testing.assert_array_equal(np.asarray(by_id.logits(ids)), np.asarray(local.logits(ids)))
  assert by_id.tokenizer.encode_ids(["hello"]) == local.tokenizer.encode_ids(["hello"])
  assert hf.build_module("org/tiny-lm").config == local.module.config
  assert model_loading.resolve("org/tiny-lm") == snapshot
  assert vocabularies.load("org/tiny-lm").encode("hello") == vocabularies.load(source).encode(
      "hello")


def test_revision_selects_the_cached_ref(tmp_path, offline_cache):
  for seed, commit, ref in ((0, COMMIT, "main"), (1, OTHER_COMMIT, "v1")):
    source = tmp_path / f"source{seed}"
    eval_testing.save_tiny_lm(source, seed=seed)
    _cache_snapshot(offline_cache, "org/tiny-lm", source, commit, ref)
  assert hub.resolve("org/tiny-lm").name == COMMIT
  assert hub.resolve("org/tiny-lm", "v1").name == OTHER_COMMIT
  assert hub.resolve("org/tiny-lm", OTHER_COMMIT).name == OTHER_COMMIT
  assert model_loading.resolve("org/tiny-lm", "v1").name == OTHER_COMMIT


def test_offline_miss_is_one_line_saying_how_to_fix(offline_cache):
  with pytest.raises(hub.HubError) as error:
    hf.load("bigscience/bloomz-560m")
  message = str(error.value)
  assert message.startswith("bigscience/bloomz-560m: ") and "\n" not in message
  assert "download it first" in message and "unset HF_HUB_OFFLINE" in message
  assert str(offline_cache) in message
  with pytest.raises(FileNotFoundError, match=r"org/other@v2: .*HF_HUB_OFFLINE"):
    model_loading.resolve("org/other", "v2")


def test_downloads_only_safetensors_json_and_tokenizers(monkeypatch, tmp_path):
  calls = []

  def fake_snapshot_download(repo_id, **kwargs):
    calls.append((repo_id, kwargs))
    return str(tmp_path)

  import huggingface_hub
  monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
  monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
  monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
  monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
  monkeypatch.chdir(tmp_path)
  assert hub.resolve("org/name", "v1") == tmp_path
  (repo_id, kwargs), = calls
  assert repo_id == "org/name" and kwargs["revision"] == "v1"
  assert kwargs["cache_dir"] == tmp_path / "cache" and kwargs["local_files_only"] is False

  def fetched(name):
    return any(fnmatch.fnmatch(name, pattern) for pattern in kwargs["allow_patterns"])

  for wanted in ("config.json", "model.safetensors", "model-00001-of-00002.safetensors",
                 "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
                 "spiece.model", "tokenizer.model", "sentencepiece.bpe.model", "vocab.txt",
                 "merges.txt", "modules.json", "1_Pooling/config.json",
                 "2_Dense/model.safetensors", "2_Dense/config.json"):
    assert fetched(wanted), wanted
  for refused in ("pytorch_model.bin", "2_Dense/pytorch_model.bin", "tf_model.h5",
                  "flax_model.msgpack", "modeling_custom.py", "model.ckpt", "README.md"):
    assert not fetched(refused), refused
  shutil.rmtree(tmp_path / "cache", ignore_errors=True)
