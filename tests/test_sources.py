"""Data directory, pinned file table and verified downloads (from a local HTTP server)."""

import functools
import hashlib
import http.server
import json
import pathlib
import socket
import threading

import pytest

from underrep_jax.data import readers
from underrep_jax.data import sources
from underrep_jax.data.errors import DataError

SUN_TRAIN = "datasets/sentiment/sundanese/train.csv"
SUN_VALID = "datasets/sentiment/sundanese/valid.csv"


@pytest.fixture(autouse=True)
def _reset_data_dir():
  sources.set_data_dir(None)
  yield
  sources.set_data_dir(None)


# Data directory and pinned table ------------------------------------------------------


def test_data_dir_comes_from_flag_then_env(data_dir, monkeypatch, tmp_path):
  monkeypatch.setenv(sources.DATA_DIR_ENV, str(data_dir))
  assert sources.data_dir() == data_dir
  sources.set_data_dir(tmp_path)
  assert sources.data_dir() == tmp_path
  sources.set_data_dir("")  # An empty --config.data_dir means "not set".
  assert sources.data_dir() == data_dir
  monkeypatch.delenv(sources.DATA_DIR_ENV)
  assert sources.data_dir() is None


def test_resolve_in_a_data_dir(data_dir, monkeypatch, tmp_path):
  monkeypatch.setenv(sources.DATA_DIR_ENV, str(data_dir))
  assert sources.resolve("nusax", SUN_TRAIN) == data_dir / "nusax" / SUN_TRAIN
  sources.set_data_dir(tmp_path)
  with pytest.raises(DataError) as error:
    sources.resolve("nusax", SUN_TRAIN)
  message = str(error.value)
  assert str(tmp_path / "nusax" / SUN_TRAIN) in message
  assert "--config.data_dir" in message and sources.DATA_DIR_ENV in message
  with pytest.raises(DataError, match="unknown dataset 'flores'"):
    sources.resolve("flores", "x.tsv")
  for bad in ["../nusax/README.md", "/etc/passwd", "datasets//mt/train.csv", ""]:
    with pytest.raises(DataError, match="bad file path"):
      sources.resolve("nusax", bad)


def test_table_is_current(data_dir, tmp_path):
  """The committed table is exactly what the committed script writes from the data."""
  out = tmp_path / "upstream_files.json"
  sources.write_table(data_dir, out)
  assert out.read_bytes() == sources.TABLE_PATH.read_bytes()
  table = json.loads(out.read_text(encoding="utf-8"))
  for dataset, repo in sources.REPOSITORIES.items():
    commit = (data_dir / dataset / "SOURCE_COMMIT").read_text(encoding="utf-8").strip()
    assert table[dataset]["repo"] == repo
    assert sources.upstream(dataset) == (repo, commit)
  data_files = [p for p in data_dir.rglob("*")
                if p.suffix in (".csv", ".tsv", ".jsonl", ".txt")]
  listed = {f"{d}/{p}" for d in table for p in table[d]["files"]}
  assert {p.relative_to(data_dir).as_posix() for p in data_files} <= listed


def test_list_files():
  assert len(sources.list_files("speechmap", "responses/")) == 110
  assert sources.list_files("nusax", "datasets/mt/") == [
      "datasets/mt/README.md", "datasets/mt/test.csv", "datasets/mt/train.csv",
      "datasets/mt/valid.csv"]
  assert "Surveys_parsed/ZA7500_q_gb.csv" in sources.list_files("euvalues")


def test_default_download_url(monkeypatch):
  monkeypatch.delenv(sources.BASE_URL_ENV, raising=False)
  _, commit = sources.upstream("nusax")
  assert sources.download_url("nusax", "datasets/mt/train.csv") == (
      f"https://raw.githubusercontent.com/IndoNLP/nusax/{commit}/datasets/mt/train.csv")


# Downloads ----------------------------------------------------------------------------


class _Server:
  """Serves `root` on 127.0.0.1 like raw.githubusercontent.com, recording each GET."""

  def __init__(self, root: pathlib.Path):
    self.root = root
    self.requests: list[str] = []
    server = self

    class Handler(http.server.SimpleHTTPRequestHandler):

      def do_GET(self):
        server.requests.append(self.path)
        super().do_GET()

      def log_message(self, *args):
        del args

    self.httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
    self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                   daemon=True)

  def put(self, dataset: str, relpath: str, content: bytes) -> None:
    repo, commit = sources.upstream(dataset)
    path = self.root / repo / commit / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


@pytest.fixture
def server(tmp_path, data_dir, monkeypatch):
  """A mirror with two real NusaX files; no data dir, a tmp cache."""
  mirror = _Server(tmp_path / "mirror")
  for relpath in [SUN_TRAIN, SUN_VALID]:
    mirror.put("nusax", relpath, (data_dir / "nusax" / relpath).read_bytes())
  mirror.thread.start()
  monkeypatch.delenv(sources.DATA_DIR_ENV, raising=False)
  monkeypatch.setenv(sources.BASE_URL_ENV, mirror.url)
  monkeypatch.setenv(sources.CACHE_DIR_ENV, str(tmp_path / "cache"))
  yield mirror
  mirror.httpd.shutdown()
  mirror.httpd.server_close()


def _cached_files(tmp_path: pathlib.Path) -> list[pathlib.Path]:
  return [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_download_verifies_then_reuses_the_cache(server, tmp_path, data_dir):
  _, commit = sources.upstream("nusax")
  path = sources.resolve("nusax", SUN_TRAIN)
  assert path == tmp_path / "cache" / "nusax" / commit / SUN_TRAIN
  assert path.read_bytes() == (data_dir / "nusax" / SUN_TRAIN).read_bytes()
  assert server.requests == [f"/IndoNLP/nusax/{commit}/{SUN_TRAIN}"]
  assert sources.resolve("nusax", SUN_TRAIN) == path
  # Readers work the same in download mode, and reuse the cached file.
  rows = readers.nusax_sentiment("sun", "train")
  assert len(rows) == 500 and rows[0]["language"] == "sun"
  assert len(server.requests) == 1
  assert _cached_files(tmp_path) == [path]


def test_a_damaged_cache_file_is_downloaded_again(server, tmp_path):
  path = sources.resolve("nusax", SUN_VALID)
  path.write_bytes(b"truncated")
  assert sources.resolve("nusax", SUN_VALID) == path
  assert len(server.requests) == 2
  assert hashlib.sha256(path.read_bytes()).hexdigest() == sources.file_info(
      "nusax", SUN_VALID)["sha256"]


def test_checksum_mismatch_keeps_nothing(server, tmp_path, data_dir):
  original = (data_dir / "nusax" / SUN_TRAIN).read_bytes()
  corrupted = original.replace(b"positive", b"negative", 1)
  server.put("nusax", SUN_TRAIN, corrupted)
  with pytest.raises(DataError) as error:
    sources.resolve("nusax", SUN_TRAIN)
  message = str(error.value)
  assert "checksum mismatch" in message
  assert sources.download_url("nusax", SUN_TRAIN) in message
  assert sources.file_info("nusax", SUN_TRAIN)["sha256"] in message
  assert hashlib.sha256(corrupted).hexdigest() in message
  assert _cached_files(tmp_path) == []


def test_file_missing_upstream(server, tmp_path):
  with pytest.raises(DataError, match=r"download of .*/datasets/mt/train\.csv failed "
                     r"\(HTTP Error 404"):
    sources.resolve("nusax", "datasets/mt/train.csv")
  assert _cached_files(tmp_path) == []


def test_file_not_in_the_table(server):
  with pytest.raises(DataError, match=r"nusax/datasets/mt/dev\.csv is not in the pinned file "
                     r"table"):
    sources.resolve("nusax", "datasets/mt/dev.csv")
  assert server.requests == []


def test_offline_error_points_at_the_data_dir(tmp_path, monkeypatch):
  with socket.socket() as sock:  # A port that nothing listens on any more.
    sock.bind(("127.0.0.1", 0))
    dead_port = sock.getsockname()[1]
  monkeypatch.delenv(sources.DATA_DIR_ENV, raising=False)
  monkeypatch.setenv(sources.BASE_URL_ENV, f"http://127.0.0.1:{dead_port}")
  monkeypatch.setenv(sources.CACHE_DIR_ENV, str(tmp_path / "cache"))
  with pytest.raises(DataError) as error:
    sources.resolve("nusax", SUN_TRAIN)
  message = str(error.value)
  assert "download of" in message and "failed" in message
  assert "UNDERREP_DATA_DIR" in message and "--config.data_dir" in message
  assert _cached_files(tmp_path) == []


# Local copies checked against the pinned sums ----------------------------------------


def _truncated_copy(data_dir, tmp_path, relpath=SUN_TRAIN, commit=True):
  """A data dir whose nusax file ends early, exactly at a row end (no parse error)."""
  text = (data_dir / "nusax" / relpath).read_text(encoding="utf-8")
  lines = text.splitlines(keepends=True)
  target = tmp_path / "nusax" / relpath
  target.parent.mkdir(parents=True)
  target.write_text("".join(lines[:len(lines) // 3]), encoding="utf-8")
  if commit:
    (tmp_path / "nusax" / "SOURCE_COMMIT").write_text(
        (data_dir / "nusax" / "SOURCE_COMMIT").read_text())
  return target


@pytest.fixture
def _verify_mode():
  yield
  sources.set_verify("warn")


def test_a_truncated_local_file_is_a_warning_naming_it(data_dir, tmp_path, caplog,
                                                       _verify_mode):
  target = _truncated_copy(data_dir, tmp_path)
  sources.set_data_dir(tmp_path)
  assert sources.resolve("nusax", SUN_TRAIN) == target
  warnings = [r.getMessage() for r in caplog.records if str(target) in r.getMessage()]
  assert len(warnings) == 1 and "IndoNLP/nusax" in warnings[0], warnings
  sources.resolve("nusax", SUN_TRAIN)  # checked once per process: no second warning
  assert len([r for r in caplog.records if str(target) in r.getMessage()]) == 1


def test_strict_verification_refuses_a_truncated_file(data_dir, tmp_path, _verify_mode):
  target = _truncated_copy(data_dir, tmp_path)
  sources.set_data_dir(tmp_path)
  sources.set_verify("strict")
  with pytest.raises(DataError, match=f"data file {target} does not match IndoNLP/nusax"):
    readers.nusax_sentiment("sun", "train")
  sources.set_verify("off")
  assert readers.nusax_sentiment("sun", "train")  # the user asked for no check


def test_the_real_data_dir_verifies_and_unknown_modes_are_refused(data_dir, _verify_mode):
  sources.set_data_dir(data_dir)
  sources.set_verify("strict")
  assert sources.resolve("nusax", SUN_TRAIN).is_file()
  with pytest.raises(ValueError, match="data.verify='maybe'"):
    sources.set_verify("maybe")


def test_another_upstream_commit_is_not_checked(data_dir, tmp_path, _verify_mode):
  _truncated_copy(data_dir, tmp_path)
  (tmp_path / "nusax" / "SOURCE_COMMIT").write_text("0" * 40 + "\n")
  sources.set_data_dir(tmp_path)
  sources.set_verify("strict")
  assert sources.resolve("nusax", SUN_TRAIN).is_file()
