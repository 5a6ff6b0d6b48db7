"""Training metrics: TensorBoard events, WORKDIR/metrics.jsonl, a tqdm progress bar, MFU.

Only process 0 writes anything. metrics.jsonl holds one JSON object per logged step (at
least "step" and "loss", plus the scalars of training hooks as "<hook>/<key>"; a hook step
that is not a log step has a line of its own with only the hook's scalars). A resumed run
appends to it, so after a kill steps between the last checkpoint and the kill appear
twice: readers keep the last line per step.

MFU (model FLOPs utilisation), as in PaLM appendix B:
  mfu = flops_per_token * tokens_per_s / (num_devices * peak_flops_per_device)
where flops_per_token is the model's training FLOPs per token given by the caller
(`module_flops_per_token`: the family's count where it has one, MaxText's, see
`models.decoder.flops_per_token`; else `transformer_flops_per_token`, 6 N + 12 L d T;
forward + backward, no remat recompute),
tokens_per_s counts every position of the global batch (padding included, as the
hardware computes it), and peak_flops_per_device comes from the config or from
`PEAK_FLOPS` by device kind (dense bf16). Without both numbers no MFU is reported.
"""

import json
import os
import time
from typing import Any

from etils import epath
import jax
import numpy as np
import tensorboardX
import tqdm

# Dense bf16 peak FLOP/s per device (one chip; for GPUs, the SXM part), by a substring of
# jax.Device.device_kind. Checked in order, so the more specific names come first.
PEAK_FLOPS: tuple[tuple[str, float], ...] = (
    ("TPU v6", 918e12),
    ("TPU v5 lite", 197e12),
    ("TPU v5e", 197e12),
    ("TPU v5", 459e12),
    ("TPU v4", 275e12),
    ("TPU v3", 123e12),
    ("H200", 989e12),
    ("H100", 989e12),
    ("A100", 312e12),
    ("L4", 121e12),
)


def peak_flops_per_device(device: jax.Device | None = None) -> float | None:
  """Looked-up peak FLOP/s of `device` (default: the first device), None when unknown."""
  kind = (device or jax.devices()[0]).device_kind
  for name, flops in PEAK_FLOPS:
    if name.lower() in kind.lower():
      return flops
  return None


def transformer_flops_per_token(num_params: int, num_layers: int, hidden: int,
                                seq_len: int) -> float:
  """Training FLOPs per token of a dense transformer: 6 N + 12 L d T (PaLM, App. B)."""
  return 6.0 * num_params + 12.0 * num_layers * hidden * seq_len


def module_flops_per_token(module, init_params, seq_len: int) -> tuple[int, float]:
  """(parameter count, training FLOPs per token) of a zoo module, from shapes only.

  The FLOPs are the family's own count (`config.flops_per_token`, MaxText's: the input
  embedding is a gather, not a matmul) where the family has one (the decoder-only
  families and the BERT-family encoders); otherwise 6 N + 12 L d T over all parameters.
  """
  from flax import linen as nn
  abstract = jax.eval_shape(init_params, jax.random.PRNGKey(0))
  params_count = int(sum(x.size for x in jax.tree.leaves(nn.unbox(abstract))))
  cfg = module.config
  if hasattr(cfg, "flops_per_token"):
    return params_count, float(cfg.flops_per_token(seq_len))
  hidden = getattr(cfg, "hidden_size", None) or cfg.d_model  # T5 names it d_model
  layers = cfg.num_layers + getattr(cfg, "num_decoder_layers", 0)
  return params_count, transformer_flops_per_token(params_count, layers, hidden, seq_len)


def count_tokens(batch) -> int:
  """Positions in a (global) batch: all `*input_tokens` features, else the first leaf."""
  sizes = [int(np.prod(v.shape)) for k, v in batch.items() if k.endswith("input_tokens")]
  if sizes:
    return sum(sizes)
  return int(np.prod(jax.tree.leaves(batch)[0].shape))


def mfu(flops_per_token: float | None, tokens_per_s: float, num_devices: int,
        peak_per_device: float | None) -> float | None:
  if not flops_per_token or not peak_per_device:
    return None
  return flops_per_token * tokens_per_s / (num_devices * peak_per_device)


class MetricWriter:
  """Writes logged steps to TensorBoard and metrics.jsonl, and drives the progress bar."""

  def __init__(self, workdir: str | epath.Path, total_steps: int, start_step: int = 0,
               enabled: bool = True, progress_bar: bool = True):
    self.enabled = enabled
    self._jsonl = epath.Path(workdir) / "metrics.jsonl"
    self._tb = None
    self._bar = None
    if not enabled:
      return
    self._jsonl.parent.mkdir(parents=True, exist_ok=True)
    self._tb = tensorboardX.SummaryWriter(os.fspath(epath.Path(workdir) / "tensorboard"))
    if progress_bar:
      self._bar = tqdm.tqdm(total=total_steps, initial=start_step, desc="train",
                            dynamic_ncols=True, smoothing=0.1)

  def write(self, step: int, scalars: dict[str, Any]) -> None:
    """Records the scalars of `step` (numbers only; None values are skipped)."""
    if not self.enabled:
      return
    row = {"step": int(step)}
    row.update({k: float(v) for k, v in scalars.items() if v is not None})
    for name, value in row.items():
      if name != "step":  # hook scalars arrive as "<hook>/<key>" and keep their own group
        self._tb.add_scalar(name if "/" in name else f"train/{name}", value, global_step=step)
    self._tb.flush()
    self._append(json.dumps(row))
    if self._bar is not None and "loss" in row:
      self._bar.set_postfix(loss=f"{row['loss']:.4f}", refresh=False)

  def _append(self, line: str) -> None:
    path = os.fspath(self._jsonl)
    if "://" in path:  # Object stores cannot append: rewrite the (small) file.
      old = self._jsonl.read_text() if self._jsonl.exists() else ""
      self._jsonl.write_text(old + line + "\n")
    else:
      with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")

  def advance(self, steps: int = 1) -> None:
    if self._bar is not None:
      self._bar.update(steps)

  def message(self, text: str) -> None:
    """A line on the console that does not break the progress bar."""
    if self.enabled:
      (self._bar.write if self._bar is not None else print)(text)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
    if self._tb is not None:
      self._tb.close()


class Interval:
  """Means of the step metrics and the throughput since the last logged step.

  The first step after a (re)start includes compilation, so it is left out of the
  throughput; learning_rate is reported as of the logged step, not averaged.
  """

  def __init__(self, flops_per_token: float | None = None, peak_per_device: float | None = None):
    self.flops_per_token = flops_per_token
    self.peak_per_device = peak_per_device
    self._timed = False
    self._last_lr = None
    self._reset()

  def _reset(self) -> None:
    self._sums: dict[str, float] = {}
    self._count = 0
    self._tokens = 0
    self._timed_steps = 0
    self._start = time.perf_counter()

  def add(self, values: dict[str, float], tokens: int) -> None:
    """Records one finished step, once its metrics are on the host.

    The loop fetches the first step of a (re)start on its own, so the clock starts when
    compilation is over; later steps may arrive in groups, and the time of the interval is
    measured at `summary`, right after the logged step's fetch.
    """
    for k, v in values.items():
      self._sums[k] = self._sums.get(k, 0.0) + v
    self._count += 1
    self._last_lr = values.get("learning_rate")
    if self._timed:
      self._tokens += tokens
      self._timed_steps += 1
    else:  # the compiling step: start the clock after it
      self._timed = True
      self._start = time.perf_counter()

  def summary(self) -> dict[str, float | None]:
    """The interval's scalars (mean metrics, tokens/s, steps/s, mfu); starts a new one."""
    out = {k: v / max(self._count, 1) for k, v in self._sums.items()}
    if self._last_lr is not None:
      out["learning_rate"] = self._last_lr
    if self._timed_steps:
      elapsed = max(time.perf_counter() - self._start, 1e-9)
      out["tokens_per_s"] = self._tokens / elapsed
      out["steps_per_s"] = self._timed_steps / elapsed
      out["mfu"] = mfu(self.flops_per_token, out["tokens_per_s"], jax.device_count(),
                       self.peak_per_device)
    self._reset()
    return out
