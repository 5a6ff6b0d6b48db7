"""Launch scripts cannot run here; their dry runs print the exact commands."""

import pathlib
import shlex
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def _run(script, *args):
  result = subprocess.run([sys.executable, str(REPO / "launch" / script), *args],
                          capture_output=True, text=True, cwd=REPO)
  return result.returncode, [shlex.split(l) for l in result.stdout.splitlines() if l.strip()]


TPU = ["--name=ia", "--zone=us-central2-b", "--project=p", "--dry_run"]


def test_tpu_create_spot_pod_slice():
  rc, (cmd,) = _run("tpu_vm.py", "create", "--accelerator=v5p-64", "--spot", *TPU)
  assert rc == 0
  assert cmd[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "create", "ia"]
  assert {"--zone=us-central2-b", "--project=p", "--accelerator-type=v5p-64", "--spot"} <= set(cmd)


def test_tpu_install_copies_and_installs_on_all_workers():
  rc, (copy, setup) = _run("tpu_vm.py", "install", "--source=/src/underrep_jax", *TPU)
  assert rc == 0
  assert copy[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "scp"]
  assert "/src/underrep_jax" in copy and "ia:~/underrep_jax" in copy and "--worker=all" in copy
  assert "--worker=all" in setup and "pip install" in setup[-1] and "jax[tpu]" in setup[-1]


def test_tpu_run_same_command_on_every_worker_and_logs():
  rc, (cmd,) = _run("tpu_vm.py", "run", *TPU, "--data_dir=gs://b/data", "--",
                    "--config=configs/instructalign.py:bloomz-560m", "--workdir=gs://b/run")
  assert rc == 0 and "--worker=all" in cmd
  remote = cmd[-1].removeprefix("--command=")
  assert "UNDERREP_DISTRIBUTED=1" in remote and "UNDERREP_DATA_DIR=gs://b/data" in remote
  assert "python3 -m underrep_jax.main --config=configs/instructalign.py:bloomz-560m " \
      "--workdir=gs://b/run" in remote
  rc, (logs,) = _run("tpu_vm.py", "logs", *TPU)
  assert "--worker=0" in logs and "tail" in logs[-1]
  rc, (delete,) = _run("tpu_vm.py", "delete", *TPU)
  assert delete[4:6] == ["delete", "ia"] and "--quiet" in delete
  rc, _ = _run("tpu_vm.py", "run", *TPU)
  assert rc == 2


def test_gpu_local_and_slurm():
  rc, (cmd,) = _run("gpu.py", "local", "--gpus=4", "--dry_run", "--", "--config=c.py",
                    "--workdir=w")
  assert rc == 0 and "CUDA_VISIBLE_DEVICES=0,1,2,3" in cmd
  assert cmd[-4:] == ["-m", "underrep_jax.main", "--config=c.py", "--workdir=w"]
  result = subprocess.run(
      [sys.executable, str(REPO / "launch" / "gpu.py"), "slurm", "--nodes=4", "--gpus_per_node=8",
       "--partition=gpu", "--dry_run", "--", "--config=c.py", "--workdir=/shared/w"],
      capture_output=True, text=True, cwd=REPO)
  assert result.returncode == 0
  out = result.stdout
  for line in ("#SBATCH --nodes=4", "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=8",
               "#SBATCH --partition=gpu", "export UNDERREP_DISTRIBUTED=1",
               "srun python -m underrep_jax.main --config=c.py --workdir=/shared/w"):
    assert line in out.splitlines(), line
  assert out.splitlines()[-1] == "sbatch underrep_jax.sbatch"
  assert not (REPO / "underrep_jax.sbatch").exists()
