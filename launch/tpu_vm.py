"""Cloud TPU VM launcher: create a TPU VM or pod slice, install, run on all workers, stream
logs, delete. Every step shells out to `gcloud`; `--dry_run` prints the exact commands.

    python launch/tpu_vm.py create  --name=ia --zone=us-central2-b --accelerator=v4-32 [--spot]
    python launch/tpu_vm.py install --name=ia --zone=us-central2-b
    python launch/tpu_vm.py run     --name=ia --zone=us-central2-b -- \
        --config=configs/instructalign.py:bloomz-560m --workdir=gs://bucket/runs/ia
    python launch/tpu_vm.py logs    --name=ia --zone=us-central2-b
    python launch/tpu_vm.py delete  --name=ia --zone=us-central2-b

On a pod slice every worker runs the same command; JAX finds its peers by itself
(`jax.distributed.initialize()`, forced by UNDERREP_DISTRIBUTED=1), and each host reads
its own shard of the data. Use a `gs://` workdir so all hosts share the checkpoints.
"""

import argparse
import shlex
import subprocess
import sys

import arguments  # launch/arguments.py

DEFAULT_RUNTIME = "tpu-ubuntu2204-base"
REMOTE_DIR = "underrep_jax"
LOG_FILE = "underrep_jax.log"


def _base(args, verb: str) -> list[str]:
  cmd = ["gcloud", "compute", "tpus", "tpu-vm", verb, args.name, f"--zone={args.zone}"]
  if args.project:
    cmd.append(f"--project={args.project}")
  return cmd


def _ssh(args, remote: str, worker: str = "all") -> list[str]:
  return _base(args, "ssh") + [f"--worker={worker}", f"--command={remote}"]


def create_commands(args) -> list[list[str]]:
  cmd = _base(args, "create") + [f"--accelerator-type={args.accelerator}",
                                 f"--version={args.runtime}"]
  if args.spot:
    cmd.append("--spot")
  return [cmd]


def install_commands(args) -> list[list[str]]:
  copy = ["gcloud", "compute", "tpus", "tpu-vm", "scp", "--recurse", args.source,
          f"{args.name}:~/{REMOTE_DIR}", f"--zone={args.zone}", "--worker=all"]
  if args.project:
    copy.append(f"--project={args.project}")
  setup = (f"cd ~/{REMOTE_DIR} && python3 -m pip install -q -U pip && "
           f"python3 -m pip install -q -e . 'jax[tpu]'")
  return [copy, _ssh(args, setup)]


def run_commands(args) -> list[list[str]]:
  main_args = " ".join(shlex.quote(a) for a in args.main_args)
  env = "UNDERREP_DISTRIBUTED=1"
  if args.data_dir:
    env += f" UNDERREP_DATA_DIR={shlex.quote(args.data_dir)}"
  remote = (f"cd ~/{REMOTE_DIR} && nohup env {env} python3 -m underrep_jax.main {main_args} "
            f"> ~/{LOG_FILE} 2>&1 &")
  return [_ssh(args, remote)]


def logs_commands(args) -> list[list[str]]:
  return [_ssh(args, f"tail -n 200 -f ~/{LOG_FILE}", worker="0")]


def delete_commands(args) -> list[list[str]]:
  return [_base(args, "delete") + ["--quiet"]]


COMMANDS = {"create": create_commands, "install": install_commands, "run": run_commands,
            "logs": logs_commands, "delete": delete_commands}


def parse(argv: list[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("step", choices=sorted(COMMANDS))
  parser.add_argument("--name", required=True, help="TPU VM name")
  parser.add_argument("--zone", required=True)
  parser.add_argument("--project", default="")
  parser.add_argument("--accelerator", default="v4-8", help="e.g. v4-8, v5p-64, v5litepod-16")
  parser.add_argument("--runtime", default=DEFAULT_RUNTIME, help="TPU VM software version")
  parser.add_argument("--spot", action="store_true", help="spot (preemptible) capacity")
  parser.add_argument("--source", default=".", help="local checkout copied to every worker")
  parser.add_argument("--data_dir", default="", help="UNDERREP_DATA_DIR on the workers")
  parser.add_argument("--dry_run", action="store_true", help="print the commands only")
  return arguments.parse_with_main_args(parser, argv)


def main(argv: list[str] | None = None) -> int:
  args = parse(sys.argv[1:] if argv is None else argv)
  if args.step == "run" and not args.main_args:
    print("run needs the job's arguments after --, e.g. -- --config=... --workdir=gs://...",
          file=sys.stderr)
    return 2
  for cmd in COMMANDS[args.step](args):
    print(shlex.join(cmd), flush=True)
    if not args.dry_run:
      subprocess.run(cmd, check=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
