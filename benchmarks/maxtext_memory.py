"""Per-chip memory of our compiled train step vs MaxText's, same Llama, same TPU target.

Both compile ahead of time on this host for the target (libtpu, no TPU needed), ours as
`python -m underrep_jax.plan` compiles it (`plan.compile_step`), MaxText's with its own
`train_compile` (its `base.yml`, only the model's sizes and these settings overridden).
The model is `benchmarks/llama_60m/config.json`; bf16 compute, float32 parameters and
AdamW, no remat (`--remat`: each layer recomputed), T tokens a row; the mesh is
data-parallel over the target's chips (parameters replicated) or, with `--fsdp`, FSDP
over them. MaxText scans its layers; ours are unrolled unless `--scan_layers`. Peak per
chip is arguments + outputs - aliased + temporaries + generated code, for both. The last
line is `ratio=X.XX`: MaxText's peak / ours at the largest batch (>1: we need less).

MaxText is not a dependency of the project: `bash benchmarks/install_maxtext.sh DIR`.

  PYTHONPATH=DIR python benchmarks/maxtext_memory.py [--rows=1,4,8]
      [--length=256] [--target=v5e-8] [--fsdp] [--attention=xla|splash] [--remat]
      [--scan_layers]
"""

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "benchmarks" / "llama_60m"
GIB = 1024 ** 3
# plan's memory fields (plan.Attempt, whose `peak` both sides use), MaxText's names for them.
MAXTEXT_MEMORY_FIELDS = {"argument": "argument", "output": "output", "alias": "alias",
                         "temp": "temp", "code": "generated_code"}


def model_overrides(model: dict) -> list[str]:
  """MaxText's `key=value` overrides for the Llama of `model` (its config.json)."""
  return [
      f"base_emb_dim={model['hidden_size']}",
      f"base_num_query_heads={model['num_attention_heads']}",
      f"base_num_kv_heads={model['num_key_value_heads']}",
      f"base_mlp_dim={model['intermediate_size']}",
      f"base_num_decoder_layers={model['num_hidden_layers']}",
      f"head_dim={model['head_dim']}", f"vocab_size={model['vocab_size']}",
      f"normalization_layer_epsilon={model['rms_norm_eps']}",
      f"rope_max_timescale={int(model['rope_theta'])}",
      "decoder_block=llama2", "logits_via_embedding=false"]


def base_yml() -> pathlib.Path:
  import maxtext  # pylint: disable=import-outside-toplevel
  return pathlib.Path(maxtext.__file__).parent / "configs" / "base.yml"


def run(command: list[str]) -> str:
  result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
  if result.returncode != 0:
    sys.exit(f"{' '.join(command[:4])} ... failed ({result.returncode}):\n"
             f"{result.stdout[-2000:]}{result.stderr[-3000:]}")
  return result.stdout


# Our model.attention and MaxText's `attention` for the same computation.
ATTENTION = {"xla": ("xla", "dot_product"), "splash": ("splash", "flash")}
# MaxText's remat_policy for ours off / on. Its `none` is not "no remat": MaxText 0.2.4
# hands jax.checkpoint policy=None, which saves nothing in each layer, like `full`. Its
# least recomputation is `minimal_with_context`: every named matmul output and attention's
# context kept, the cheap elementwise work recomputed.
MAXTEXT_REMAT = {False: "minimal_with_context", True: "full"}


def ours(config, rows: int, length: int, chips: int, target: str, fsdp: bool,
         attention: str, remat: bool, scan_layers: bool):
  """Our step compiled as `python -m underrep_jax.plan` compiles it: a plan.Attempt."""
  from underrep_jax import plan  # pylint: disable=import-outside-toplevel
  config = config.copy_and_resolve_references()
  config.model.path = str(MODEL_DIR)
  config.model.remat = remat
  config.model.scan_layers = scan_layers
  config.model.attention = ATTENTION[attention][0]
  config.data.max_length = length
  config.train.batch_size = rows * chips
  if fsdp:
    config.mesh.shape = (1, -1, 1)
  attempt = plan.compile_step(config, plan.target_devices(plan.target_named(target)))
  if attempt.out_of_memory:
    sys.exit(f"ours does not fit: {attempt.out_of_memory}")
  return attempt


def maxtext(rows: int, length: int, chips: int, target: str, fsdp: bool, attention: str,
            remat: bool):
  """MaxText's step compiled by its train_compile: a plan.Attempt of its memory report."""
  from underrep_jax import plan  # pylint: disable=import-outside-toplevel
  model = json.loads((MODEL_DIR / "config.json").read_text())
  parallelism = (["ici_data_parallelism=1", f"ici_fsdp_parallelism={chips}"] if fsdp else
                 [f"ici_data_parallelism={chips}", "ici_fsdp_parallelism=1"])
  command = [
      sys.executable, "-m", "maxtext.trainers.pre_train.train_compile", str(base_yml()),
      f"compile_topology={target}", "compile_topology_num_slices=1", *model_overrides(model),
      f"max_target_length={length}", f"per_device_batch_size={rows}",
      "dtype=bfloat16", "weight_dtype=float32", f"remat_policy={MAXTEXT_REMAT[remat]}",
      "enable_dropout=false",
      f"attention={ATTENTION[attention][1]}", *parallelism, "run_name=maxtext_memory",
      f"base_output_directory={os.environ.get('TMPDIR', '/tmp')}"]
  stats = re.search(r"Memory analysis: CompiledMemoryStats\((.*)\)", run(command))
  if not stats:
    sys.exit("MaxText's train_compile printed no memory analysis")
  values = dict(re.findall(r"(\w+)_size_in_bytes=(\d+)", stats.group(1)))
  return plan.Attempt(0.0, memory={ours_name: int(values[theirs_name]) for ours_name, theirs_name
                                   in MAXTEXT_MEMORY_FIELDS.items()})


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rows", default="1,4,8", help="rows per chip, comma-separated")
  parser.add_argument("--length", type=int, default=256)
  parser.add_argument("--target", default="v5e-8")
  parser.add_argument("--fsdp", action="store_true")
  parser.add_argument("--scan_layers", action="store_true",
                      help="our layers as one scanned loop, as MaxText's (its default)")
  parser.add_argument("--remat", action="store_true",
                      help="each layer recomputed in the backward pass (MaxText: full)")
  parser.add_argument("--attention", choices=sorted(ATTENTION), default="xla",
                      help="xla: XLA's attention (MaxText: dot_product); splash: the Pallas "
                           "kernel (MaxText: flash, its splash kernel)")
  args = parser.parse_args()
  from underrep_jax import plan  # pylint: disable=import-outside-toplevel
  plan.choose_platforms(plan.target_named(args.target))  # before jax is imported
  import importlib.util  # pylint: disable=import-outside-toplevel
  spec = importlib.util.spec_from_file_location("instructalign",
                                                ROOT / "configs" / "instructalign.py")
  config_module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(config_module)
  config = config_module.get_config("bloomz-560m")
  chips = int(args.target.rsplit("-", 1)[1])
  mesh = f"fsdp {chips}" if args.fsdp else f"data {chips}"
  print(f"llama_60m on {args.target}, mesh {mesh}, attention {args.attention}, bf16 "
        f"compute, f32 params and AdamW, our scan_layers {args.scan_layers}, remat "
        f"{args.remat} (MaxText: "
        f"{MAXTEXT_REMAT[args.remat]}); GiB per chip")
  print("rows/chip x tokens | ours: args  temp  peak | maxtext: args  temp  peak | ratio")
  ratio = None
  for rows in (int(r) for r in args.rows.split(",")):
    a = ours(config, rows, args.length, chips, args.target, args.fsdp, args.attention,
             args.remat, args.scan_layers)
    b = maxtext(rows, args.length, chips, args.target, args.fsdp, args.attention,
                args.remat)
    ratio = b.peak / a.peak
    print(f"{rows:>4} x {args.length:<11} | {a.memory['argument'] / GIB:10.2f} "
          f"{a.memory['temp'] / GIB:5.2f} {a.peak / GIB:5.2f} | "
          f"{b.memory['argument'] / GIB:13.2f} {b.memory['temp'] / GIB:5.2f} "
          f"{b.peak / GIB:5.2f} | {ratio:5.2f}")
  print(f"ratio={ratio:.2f}")


if __name__ == "__main__":
  main()
