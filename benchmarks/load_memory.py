"""Peak host memory of `hf.load` relative to the checkpoint size.

Writes a random Llama-shaped checkpoint (~340 MB float32 safetensors by default) into a
temporary directory, then loads it in a fresh process and reports that process's peak
RSS above its RSS just before loading (after importing jax and the model zoo). Loading
places one tensor at a time on its device, so the extra should be ~1x the checkpoint
(the parameters themselves live in host RAM on CPU), not ~2x.

  python benchmarks/load_memory.py [--vocab=16000] [--hidden=1024] [--layers=4]
"""

import argparse
import pathlib
import subprocess
import sys
import tempfile


def _status_mb(field: str) -> float:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith(field + ":"):
        return int(line.split()[1]) / 1024
  raise RuntimeError(f"no {field} in /proc/self/status")


def rss_mb() -> float:
  return _status_mb("VmRSS")


def peak_rss_mb() -> float:
  # VmHWM belongs to this process image; getrusage's ru_maxrss would also count the
  # parent's memory from before the fork+exec.
  return _status_mb("VmHWM")


def child(path: str) -> None:
  import jax
  from underrep_jax.models import hf
  jax.numpy.zeros(1).block_until_ready()  # start the backend before measuring
  before = rss_mb()
  model = hf.load(path)
  jax.block_until_ready(model.params)
  print(f"{before:.1f} {peak_rss_mb():.1f} {rss_mb():.1f}")


def write_checkpoint(directory: pathlib.Path, vocab: int, hidden: int, layers: int) -> int:
  import jax
  from underrep_jax import models
  from underrep_jax.models import hf
  module = models.build("llama", {"vocab_size": vocab, "hidden_size": hidden,
                                  "intermediate_size": hidden * 11 // 4, "num_layers": layers,
                                  "num_heads": hidden // 64, "num_kv_heads": hidden // 128,
                                  "head_dim": 64})
  params = models.init_params(module, rng=jax.random.PRNGKey(0))
  hf.save(hf.from_params(module, params), directory)
  return sum(f.stat().st_size for f in directory.glob("*.safetensors"))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--vocab", type=int, default=16000)
  parser.add_argument("--hidden", type=int, default=1024)
  parser.add_argument("--layers", type=int, default=4)
  parser.add_argument("--child", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    child(args.child)
    return
  with tempfile.TemporaryDirectory() as tmp:
    size_mb = write_checkpoint(pathlib.Path(tmp), args.vocab, args.hidden, args.layers) / 2 ** 20
    out = subprocess.run([sys.executable, __file__, f"--child={tmp}"], check=True,
                         capture_output=True, text=True).stdout.split()
  before, peak, after = (float(x) for x in out[-3:])
  print(f"checkpoint {size_mb:.1f} MB (float32 safetensors)")
  print(f"RSS before load {before:.1f} MB, peak {peak:.1f} MB, after {after:.1f} MB")
  print(f"peak extra {peak - before:.1f} MB = {(peak - before) / size_mb:.2f}x the checkpoint; "
        f"resident params {after - before:.1f} MB = {(after - before) / size_mb:.2f}x")
  print(f"ratio={(peak - before) / size_mb:.2f}")


if __name__ == "__main__":
  main()
