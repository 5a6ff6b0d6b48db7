"""The launcher: bad command lines are one-line errors with exit code 2; jobs run."""

import json

import launcher  # tests/launcher.py


def _run(*args, timeout=600):
  return launcher.run_main(*args, timeout=timeout, check=False)


def _assert_usage_error(result, *words):
  assert result.returncode == 2, result.stderr
  lines = [l for l in result.stderr.splitlines() if l.startswith("underrep_jax.main: error")]
  assert len(lines) == 1, result.stderr
  assert "Traceback" not in result.stderr
  for word in words:
    assert word in lines[0], lines[0]


def test_missing_config_file(tmp_path):
  _assert_usage_error(_run("--config=configs/does_not_exist.py", f"--workdir={tmp_path}"),
                      "does_not_exist.py")


def test_unknown_override_key(tmp_path):
  _assert_usage_error(_run("--config=configs/inspect_data.py", f"--workdir={tmp_path}",
                           "--config.data.no_such_key=3"), "no_such_key")


def test_unknown_job(tmp_path):
  _assert_usage_error(_run("--config=configs/inspect_data.py", f"--workdir={tmp_path}",
                           "--config.job=nope"), "nope", "inspect_data")


def test_default_workdir():
  from underrep_jax import main
  assert main.default_workdir("--config=configs/univar.py:tiny") == "runs/univar_tiny"
  assert main.default_workdir("--config=/x/configs/evaluate.py") == "runs/evaluate"


def test_inspect_job_writes_summary(tmp_path):
  result = _run("--config=configs/inspect_data.py:eval", f"--workdir={tmp_path}",
                "--config.data.num_examples=20", "--config.data.vocab=bytes")
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads((tmp_path / "data_summary.json").read_text())
  assert summary["mixture"] == "nusax_senti" and summary["examples"] == 20
  assert summary["targets_tokens"]["max"] >= summary["targets_tokens"]["mean"] > 1
  rows = [json.loads(l) for l in (tmp_path / "examples.jsonl").read_text().splitlines()]
  assert len(rows) == 20 and all(r["targets"].strip() for r in rows)


def test_cpu_is_the_default_platform_only_without_accelerator_files(monkeypatch):
  """An installed libtpu (the tpu extra) is not probed on a host without accelerators;
  a host with TPU or NVIDIA device files, or a user's own JAX_PLATFORMS, is left alone."""
  from underrep_jax import main
  for files, preset, expected in (([], None, "cpu"), (["/dev/accel0"], None, None),
                                  (["/dev/nvidia0"], None, None), ([], "cuda", "cuda")):
    monkeypatch.setattr(main.glob, "glob",
                        lambda pattern, files=files: [f for f in files
                                                      if f.startswith(pattern[:9])])
    if preset is None:
      monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    else:
      monkeypatch.setenv("JAX_PLATFORMS", preset)
    main._default_platforms()
    assert main.os.environ.get("JAX_PLATFORMS") == expected, (files, preset)
