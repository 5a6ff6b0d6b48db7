"""GPU launcher: one node with several GPUs, or several nodes under SLURM.

    python launch/gpu.py local -- --config=configs/instructalign.py:bloomz-560m --workdir=runs/ia
    python launch/gpu.py slurm --nodes=4 --gpus_per_node=8 --partition=gpu --time=24:00:00 \
        -- --config=configs/instructalign.py:bloomz-1b1 --workdir=/shared/runs/ia

One process per node drives all of its GPUs. Under SLURM, `jax.distributed.initialize()`
reads the job's environment (forced by UNDERREP_DISTRIBUTED=1). `--dry_run` prints the
command, or the sbatch script and the sbatch call, without running anything.
"""

import argparse
import pathlib
import shlex
import subprocess
import sys

import arguments  # launch/arguments.py

ENV = {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.92", "TF_CPP_MIN_LOG_LEVEL": "2"}


def main_command(main_args: list[str]) -> str:
  return "python -m underrep_jax.main " + " ".join(shlex.quote(a) for a in main_args)


def local_command(args) -> list[str]:
  env = [f"{k}={v}" for k, v in ENV.items()]
  if args.gpus:
    env.append("CUDA_VISIBLE_DEVICES=" + ",".join(str(i) for i in range(args.gpus)))
  return ["env", *env, sys.executable, "-m", "underrep_jax.main", *args.main_args]


def sbatch_script(args) -> str:
  lines = [
      "#!/bin/bash",
      f"#SBATCH --job-name={args.job_name}",
      f"#SBATCH --nodes={args.nodes}",
      "#SBATCH --ntasks-per-node=1",
      f"#SBATCH --gpus-per-node={args.gpus_per_node}",
      f"#SBATCH --time={args.time}",
      f"#SBATCH --output={args.job_name}-%j.log",
  ]
  if args.partition:
    lines.append(f"#SBATCH --partition={args.partition}")
  lines += ["set -euo pipefail", f"cd {shlex.quote(str(pathlib.Path(args.source).resolve()))}"]
  lines += [f"export {k}={v}" for k, v in {**ENV, "UNDERREP_DISTRIBUTED": "1"}.items()]
  if args.data_dir:
    lines.append(f"export UNDERREP_DATA_DIR={shlex.quote(args.data_dir)}")
  lines.append("srun " + main_command(args.main_args))
  return "\n".join(lines) + "\n"


def parse(argv: list[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("mode", choices=["local", "slurm"])
  parser.add_argument("--gpus", type=int, default=0, help="local: GPUs to use (0: all)")
  parser.add_argument("--nodes", type=int, default=1)
  parser.add_argument("--gpus_per_node", type=int, default=8)
  parser.add_argument("--partition", default="")
  parser.add_argument("--time", default="24:00:00")
  parser.add_argument("--job_name", default="underrep_jax")
  parser.add_argument("--source", default=".", help="checkout on the shared file system")
  parser.add_argument("--data_dir", default="")
  parser.add_argument("--script", default="", help="slurm: where to write the sbatch script")
  parser.add_argument("--dry_run", action="store_true")
  return arguments.parse_with_main_args(parser, argv)


def main(argv: list[str] | None = None) -> int:
  args = parse(sys.argv[1:] if argv is None else argv)
  if not args.main_args:
    print("give the job's arguments after --, e.g. -- --config=... --workdir=...",
          file=sys.stderr)
    return 2
  if args.mode == "local":
    cmd = local_command(args)
    print(shlex.join(cmd), flush=True)
    return 0 if args.dry_run else subprocess.run(cmd, check=False).returncode
  script = sbatch_script(args)
  path = pathlib.Path(args.script or f"{args.job_name}.sbatch")
  print(script, end="")
  print(shlex.join(["sbatch", str(path)]), flush=True)
  if args.dry_run:
    return 0
  path.write_text(script)
  return subprocess.run(["sbatch", str(path)], check=False).returncode


if __name__ == "__main__":
  sys.exit(main())
