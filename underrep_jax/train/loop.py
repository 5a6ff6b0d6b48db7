"""The generic training loop shared by every method (InstructAlign, UniVaR, ...).

A job supplies three things and the loop does the rest (mesh, optimizer, sharded state,
resume, checkpoints, metrics, preemption, NaN stop):
  init_params(rng) -> params, boxed with logical axis names (`nn.with_logical_partitioning`);
  loss_fn(params, batch, rng) -> (loss_sum, weight, metric sums)  (see `losses`);
  make_batches(start) -> iterator of host-local numpy batches, starting after `start`
    batches have been consumed (each host yields its own rows: batch_size / processes).

Config sections read: `train`, `optimizer` and `mesh`, as `config_schema` declares them
with their defaults (the loop has none of its own):
  train.steps, batch_size (global rows per update, over all hosts and microbatches),
  microbatches, log_every, checkpoint_every (0 = only at the end/on SIGTERM),
  keep_checkpoints, seed (parameter init and the per-step dropout rng),
  peak_flops_per_device (for MFU when the device table lacks the device),
  async_checkpoints, allow_config_change (resume although the saved config differs in
  fields that change the run; see `checkpointing`);
  optimizer.*: see `optimizer`;
  mesh.shape and mesh.rules, unless the job hands over its `parallel.Topology`.
The state, its shardings and the jitted step come from `program.build` (abstract shapes).

Optional `hooks` (`Hook(fn, every_n_steps, at_end)`) run evaluation, export or probes
during training; the scalars they return are logged beside the training metrics.

Step metrics stay on device and reach the host in one transfer at the steps that need
them: log steps, checkpoint steps, hook steps and the first step of a (re)start (it
compiles; the throughput clock starts after it). The NaN/Inf check runs on those fetched
per-step values, so a bad step is found at the next such step, named exactly, and no
state at or after it is saved or handed to a hook.

The config is validated before anything is built (`validation.validate_training`), the
workdir is locked for the run (`workdir.locked`), and every failure a user can act on is a
`UserError` with one line of facts.
"""

from collections.abc import Callable, Iterator, Sequence
import dataclasses
import signal
from typing import Any

from absl import logging
from etils import epath
import flax.linen as nn
import jax
import numpy as np

from underrep_jax import parallel
from underrep_jax import validation
from underrep_jax.errors import ConfigError
from underrep_jax.errors import TrainingError
from underrep_jax.train import checkpointing
from underrep_jax.train import losses
from underrep_jax.train import metrics as metrics_lib
from underrep_jax.train import program as program_lib
from underrep_jax.train import state as state_lib
from underrep_jax.train import workdir as workdir_lib

BatchFactory = Callable[[int], Iterator[dict[str, np.ndarray]]]


class NonFiniteLossError(TrainingError, FloatingPointError):
  """A train step produced a NaN or Inf metric; no state from that step on is saved."""


@dataclasses.dataclass
class TrainResult:
  state: state_lib.TrainState
  step: int                 # optimizer updates done (== state.step)
  batches_consumed: int     # data position, as saved in the checkpoints
  preempted: bool           # True when SIGTERM stopped the run early (after a save)
  last_metrics: dict[str, float]


@dataclasses.dataclass
class HookContext:
  """What a hook sees: the step just finished and the state after its update.

  `state` is the live sharded state: read it (evaluate, export, probe) but keep no
  reference, the next step donates its buffers.
  """
  step: int
  total_steps: int
  state: state_lib.TrainState
  workdir: str
  topology: parallel.Topology
  writer: metrics_lib.MetricWriter

  @property
  def mesh(self):
    return self.topology.mesh


@dataclasses.dataclass
class Hook:
  """`fn(context)` run after every `every_n_steps`-th update (and at the end if `at_end`).

  A dict of scalars it returns is written to metrics.jsonl and TensorBoard as
  `<name>/<key>` at that step. Cadence is by the global step, so a resumed run neither
  repeats the calls of steps before its checkpoint nor shifts the later ones.
  """
  fn: Callable[[HookContext], dict[str, float] | None]
  every_n_steps: int = 0  # 0: only at the end
  at_end: bool = False
  name: str | None = None

  def __post_init__(self):
    if self.every_n_steps < 0 or (not self.every_n_steps and not self.at_end):
      raise ValueError(f"hook {self.label}: every_n_steps={self.every_n_steps} must be > 0, "
                       f"or at_end=True")

  @property
  def label(self) -> str:
    return self.name or getattr(self.fn, "__name__", "hook")

  def due(self, step: int, total_steps: int) -> bool:
    return bool((self.every_n_steps and step % self.every_n_steps == 0)
                or (self.at_end and step == total_steps))


def _run_hooks(hooks, context: HookContext) -> dict[str, float]:
  """Calls the hooks due at this step; their scalars, keyed `<hook name>/<key>`."""
  scalars = {}
  for hook in hooks:
    if not hook.due(context.step, context.total_steps):
      continue
    out = hook.fn(context)
    if out is None:
      continue
    if not isinstance(out, dict):
      raise TypeError(f"hook {hook.label} returned {type(out).__name__}; expected a dict of "
                      f"scalars or None")
    for key, value in out.items():
      scalars[f"{hook.label}/{key}"] = float(np.asarray(value))
  return scalars


class PreemptionWatcher:
  """Turns SIGTERM into a save at the next step boundary, then a clean exit.

  With several processes the flag is all-gathered every step, so all hosts stop at the
  same step even when only one of them received the signal.
  """

  def __init__(self):
    self._requested = False
    self._previous = None

  def __enter__(self):
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # not the main thread: no handler, no preemption support
      self._previous = None
    return self

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)

  def _handle(self, signum, frame):
    del signum, frame
    self._requested = True

  def should_stop(self) -> bool:
    if jax.process_count() == 1:
      return self._requested
    from jax.experimental import multihost_utils
    flags = multihost_utils.process_allgather(np.asarray(self._requested, np.int32))
    return bool(np.any(flags))


def _check_finite(step: int, values: dict[str, float], saved_step: int | None,
                  checkpoints, found_at: int | None = None) -> None:
  """Raises on a non-finite metric of `step`, seen when the host fetched at `found_at`."""
  bad = [k for k in ("loss", "grad_norm") if k in values and not np.isfinite(values[k])]
  bad += [k for k, v in values.items() if k not in bad and not np.isfinite(v)]
  if bad:
    kept = (f"the checkpoint of step {saved_step} in {checkpoints} is kept" if saved_step
            else "no checkpoint was written yet")
    found = f" (found at step {found_at})" if found_at not in (None, step) else ""
    raise NonFiniteLossError(
        f"step {step}: non-finite {', '.join(f'{k}={values[k]}' for k in bad)}{found}; "
        f"stopped without saving any state from step {step} on ({kept}); lower "
        f"optimizer.learning_rate or check the data")


class _Pending:
  """Step metrics not yet on the host: device scalars, fetched together in one transfer.

  Keeping each step's values (not a running sum) lets the NaN check name the first bad
  step although it runs only when the host fetches.
  """

  def __init__(self):
    self._steps: list[tuple[int, Any, int]] = []

  def add(self, step: int, metrics, tokens: int) -> None:
    self._steps.append((step, metrics, tokens))

  def fetch(self) -> list[tuple[int, dict[str, float], int]]:
    """[(step, host metrics, tokens)] in step order; empties the queue."""
    fetched = jax.device_get([m for _, m, _ in self._steps])
    out = [(step, {k: float(v) for k, v in values.items()}, tokens)
           for (step, _, tokens), values in zip(self._steps, fetched)]
    self._steps = []
    return out


def _check_resume_config(ckpt, config, total_steps: int, allow_change: bool) -> None:
  """Refuses to resume a workdir whose saved config differs in what changes the run."""
  saved = ckpt.saved_config()
  if saved is None:
    return
  step, saved_config = saved
  if total_steps < step:
    raise ConfigError(f"train.steps={total_steps} is below step {step} of the checkpoint "
                      f"in {ckpt.directory}; train.steps may only grow on a restart")
  changes = checkpointing.config_changes(saved_config, config)
  if not changes:
    return
  listed = "; ".join(changes[:8]) + (f"; and {len(changes) - 8} more" if len(changes) > 8
                                     else "")
  if not allow_change:
    raise ConfigError(
        f"the workdir's checkpoint (step {step}, {ckpt.directory}) was trained with another "
        f"config: {listed}. Use a new --workdir, or resume anyway with "
        f"--config.train.allow_config_change=True")
  logging.warning("Resuming step %d with a changed config (allowed): %s", step, listed)


def _initial_state(ckpt, abstract_state, shardings, init_params, tx, seed, load_params):
  """(state, batches consumed, latest checkpoint step or None): resume, load or init."""
  resumed = ckpt.restore_latest(abstract_state)
  if resumed is not None:
    state, consumed, latest = resumed
    logging.info("Resumed from step %d (%d batches consumed)", latest, consumed)
    return state, consumed, latest
  if load_params is not None:
    return state_lib.state_from_params(load_params(shardings.params), tx, shardings), 0, None
  return state_lib.create_state(init_params, tx, jax.random.PRNGKey(seed), shardings), 0, None


def train(config, workdir: str, *, init_params: Callable[[jax.Array], Any],
          loss_fn: losses.LossFn, make_batches: BatchFactory,
          topology: parallel.Topology | None = None, steps: int | None = None,
          flops_per_token: float | None = None,
          load_params: Callable[[Any], Any] | None = None,
          hooks: Sequence[Hook] = ()) -> TrainResult:
  """Trains to `config.train.steps`, resuming from WORKDIR/checkpoints when present.

  `topology`: the job's mesh and rules (default: built from `config.mesh`), the one its
  data shard and model loading used. `steps`: the number of updates when the job derives
  it from its data (UniVaR's epochs); default `config.train.steps`.

  `load_params(param_shardings)` optionally supplies starting params (e.g. a pretrained
  model) as arrays in the given shardings (they are donated to the state); it is called
  only on a fresh start, never on resume. `flops_per_token` (training FLOPs per token, see
  `metrics`) enables the MFU metric. `hooks` run during training at their cadence (`Hook`).
  Raises NonFiniteLossError on a NaN/Inf loss or gradient norm, ConfigError on a
  config that cannot work or does not match the workdir's checkpoints, ResourceError when
  the workdir is busy or a checkpoint cannot be written.
  """
  validation.validate_training(config)
  with workdir_lib.locked(workdir, enabled=jax.process_index() == 0):
    return _train(config, workdir, init_params=init_params, loss_fn=loss_fn,
                  make_batches=make_batches,
                  topology=topology or parallel.Topology.from_config(config.mesh),
                  total_steps=int(config.train.steps if steps is None else steps),
                  flops_per_token=flops_per_token, load_params=load_params,
                  hooks=tuple(hooks))


def _train(config, workdir: str, *, init_params, loss_fn, make_batches, topology,
           total_steps, flops_per_token, load_params, hooks) -> TrainResult:
  tcfg = config.train
  batch_size = int(tcfg.batch_size)
  log_every = max(int(tcfg.log_every), 1)
  checkpoint_every = int(tcfg.checkpoint_every)
  program = program_lib.build(config, topology, init_params, loss_fn, total_steps)
  ckpt = checkpointing.Checkpointer(epath.Path(workdir) / "checkpoints",
                                    keep=int(tcfg.keep_checkpoints),
                                    async_save=bool(tcfg.async_checkpoints))
  try:
    _check_resume_config(ckpt, config, total_steps, bool(tcfg.allow_config_change))
    # Created outside the mesh context, under the rules (see `program.build`).
    with nn.logical_axis_rules(topology.rules):
      state, consumed, saved_step = _initial_state(
          ckpt, program.abstract_state, program.shardings, init_params, program.tx,
          int(tcfg.seed), load_params)
  except BaseException:
    ckpt.close()
    raise
  step = int(jax.device_get(state.step))
  train_step = program.step
  writer = metrics_lib.MetricWriter(workdir, total_steps, start_step=step,
                                    enabled=jax.process_index() == 0)
  peak = tcfg.peak_flops_per_device or metrics_lib.peak_flops_per_device()
  interval = metrics_lib.Interval(flops_per_token, peak)
  last: dict[str, float] = {}
  preempted = False
  # Step metrics stay on device until a step that needs them on the host (see `_Pending`).
  pending = _Pending()
  first_step = step + 1  # compiles: fetched at once, so the throughput clock starts after it

  failing = True
  try:
    with PreemptionWatcher() as watcher:
      batches = make_batches(consumed) if step < total_steps else iter(())
      while step < total_steps:
        host_batch = next(batches, None)
        if host_batch is None:
          raise RuntimeError(f"make_batches ran out of data after {consumed} batches "
                             f"(step {step} of {total_steps})")
        batch = topology.to_global(host_batch)
        rows = jax.tree.leaves(batch)[0].shape[0]
        if rows != batch_size:
          raise ValueError(f"global batch has {rows} rows but train.batch_size is {batch_size} "
                           f"({jax.process_count()} processes)")
        state, step_metrics = train_step(state, batch)
        ckpt.check()  # a background save that failed (a full disk) stops the run here
        step += 1
        consumed += 1
        pending.add(step, step_metrics, metrics_lib.count_tokens(batch))
        writer.advance()

        stop = watcher.should_stop()
        log_now = step % log_every == 0 or step == total_steps
        save_now = (stop or (checkpoint_every and step % checkpoint_every == 0)
                    or step == total_steps)
        hooks_now = any(h.due(step, total_steps) for h in hooks)
        # The host needs the metrics to log, and a clean NaN check before this state is
        # saved or handed to a hook; any other step runs ahead without waiting for it.
        if log_now or save_now or hooks_now or step == first_step:
          for done_step, values, tokens in pending.fetch():
            _check_finite(done_step, values, saved_step, ckpt.directory, found_at=step)
            last = values
            interval.add(values, tokens)
        if save_now:
          ckpt.save(step, state, consumed, config)
          saved_step = step
        row = interval.summary() if log_now else {}
        if hooks_now:
          row.update(_run_hooks(hooks, HookContext(step, total_steps, state, workdir,
                                                   topology, writer)))
        if row:
          writer.write(step, row)
        if stop:
          preempted = step < total_steps
          writer.message(f"SIGTERM: saved step {step}, stopping")
          break
    if saved_step != step:
      ckpt.save(step, state, consumed, config)
    failing = False
  finally:
    try:
      ckpt.wait()  # a run that fails still finishes writing its last good checkpoint
      ckpt.close()
    except Exception as e:  # pylint: disable=broad-except
      if not failing:
        raise
      logging.warning("Also failed while finishing the checkpoints: %s", e)
    writer.close()
  return TrainResult(state=state, step=step, batches_consumed=consumed, preempted=preempted,
                     last_metrics=last)
