"""Runs the launcher, `python -m underrep_jax.main`, in a subprocess as users do."""

import os
import pathlib
import socket
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def run_main(*args: str, cwd: pathlib.Path = REPO, timeout: int = 600,
             check: bool = True) -> subprocess.CompletedProcess:
  """The finished process; with `check`, asserts exit code 0 and shows stderr if not.

  XLA_FLAGS is cleared: the job runs on one CPU device, not the 8 simulated ones the
  in-process tests use.
  """
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", XLA_FLAGS="")
  result = subprocess.run([sys.executable, "-m", "underrep_jax.main", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env)
  if check:
    assert result.returncode == 0, result.stderr[-4000:]
  return result


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def run_processes(command: list[str], envs: list[dict], timeout: int = 400
                  ) -> list[tuple[str, str]]:
  """Runs `command` once per environment, concurrently, as the processes of one
  distributed job on localhost (coordinator, process count and id set per process);
  asserts every exit code is 0 and returns each (stdout, stderr)."""
  port = free_port()
  procs = []
  for process_id, env in enumerate(envs):
    env = dict(env, UNDERREP_COORDINATOR=f"127.0.0.1:{port}",
               UNDERREP_NUM_PROCESSES=str(len(envs)), UNDERREP_PROCESS_ID=str(process_id))
    procs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, cwd=REPO))
  outputs = []
  try:
    for proc in procs:
      outputs.append(proc.communicate(timeout=timeout))
  finally:
    for proc in procs:
      if proc.poll() is None:
        proc.kill()
  for proc, (_, err) in zip(procs, outputs):
    assert proc.returncode == 0, err[-3000:]
  return outputs
