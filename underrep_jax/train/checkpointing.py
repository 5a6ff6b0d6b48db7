"""Orbax checkpoints in WORKDIR/checkpoints/<step>/ with three items.

  state: the TrainState (params, optimizer state, step), restored directly into the
    target shardings;
  data:  JSON {"batches_consumed": n}, the position to rebuild the input pipeline at;
  config: the run's config as JSON; a restart compares it with its own (`config_changes`).

Saves are asynchronous: `save` returns once the arrays are copied off the devices, and
the files are written in the background. Orbax writes into a temporary directory and
renames it when complete, so a run killed at any moment leaves only whole checkpoints
behind; the partial ones are removed on the next start. A background save that fails
(a full disk) is reported by `check` at the next step as a `ResourceError`.

A checkpoint damaged after it was written (a file lost in a partial copy) does not block
the workdir: `restore_latest` falls back to the newest step that restores and moves the
bad ones aside to checkpoints/corrupt-<step>-<time>/ (kept for inspection, never deleted).
Paths may be local or gs://.
"""

import contextlib
import json
import time
from typing import Any

from absl import logging
from etils import epath
import jax
import orbax.checkpoint as ocp

from underrep_jax.errors import CheckpointError
from underrep_jax.errors import ResourceError
from underrep_jax.errors import os_error_message

ITEMS = ("state", "data", "config")

# Config fields a restart may change: they do not change what is trained (steps may grow;
# the mesh only places the same arrays differently).
RESUMABLE_CHANGES = (
    "mesh", "train.steps", "train.epochs", "train.log_every", "train.checkpoint_every",
    "train.keep_checkpoints", "train.async_checkpoints", "train.peak_flops_per_device",
    "train.allow_config_change", "data_dir", "data.verify", "export", "export_every",
    "model.remat", "eval",
)


def config_to_json(config) -> dict[str, Any]:
  """A JSON-safe dict of an ml_collections config (or any mapping)."""
  if hasattr(config, "to_json_best_effort"):
    return json.loads(config.to_json_best_effort())
  return json.loads(json.dumps(dict(config), default=str))


def _flatten(tree, prefix: str = "") -> dict[str, Any]:
  if isinstance(tree, dict):
    out = {}
    for key, value in tree.items():
      out.update(_flatten(value, f"{prefix}{key}."))
    return out
  return {prefix[:-1]: tree}


def config_changes(saved: dict[str, Any], current) -> list[str]:
  """"field: saved -> current" for every field that differs and changes the run."""
  old, new = _flatten(saved), _flatten(config_to_json(current))
  changes = []
  for key in sorted(set(old) | set(new)):
    if any(key == f or key.startswith(f + ".") for f in RESUMABLE_CHANGES):
      continue
    if key not in old and new[key] in ("", 0, False, None):
      continue  # a field added since the checkpoint, at its neutral default: same run
    a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
    if isinstance(a, list) or isinstance(b, list):  # tuples come back from JSON as lists
      a, b = (list(a) if isinstance(a, (list, tuple)) else a,
              list(b) if isinstance(b, (list, tuple)) else b)
    if a != b:
      changes.append(f"{key}: {a!r} -> {b!r}")
  return changes


class Checkpointer:
  """Thin wrapper over `ocp.CheckpointManager` that names the loop's items."""

  def __init__(self, directory: str | epath.Path, keep: int | None = 3,
               async_save: bool = True):
    self.directory = epath.Path(directory)
    if "://" not in str(directory):  # Orbax needs absolute local paths; gs:// stays as is
      self.directory = self.directory.absolute()
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep or None, create=True, cleanup_tmp_directories=True,
        enable_async_checkpointing=async_save)
    try:
      self._manager = ocp.CheckpointManager(self.directory, options=options,
                                            item_names=ITEMS)
    except OSError as e:
      raise ResourceError(f"cannot use the checkpoint directory {self.directory}: "
                          f"{os_error_message(e)}") from e
    self._saving: int | None = None

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state, batches_consumed: int, config) -> None:
    """Starts an asynchronous save of step `step` (overwriting nothing)."""
    self.wait()  # the previous save's error is reported as that step's
    self._saving = step
    with self._storage_errors(step):
      self._manager.save(step, force=True, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state),
          data=ocp.args.JsonSave({"batches_consumed": int(batches_consumed)}),
          config=ocp.args.JsonSave(config_to_json(config))))

  @contextlib.contextmanager
  def _storage_errors(self, step):
    """Turns a failed (background) save into one ResourceError/CheckpointError line."""
    try:
      yield
    except (ResourceError, CheckpointError):
      raise
    except OSError as e:
      raise ResourceError(f"saving checkpoint {step} in {self.directory} failed: "
                          f"{os_error_message(e)}") from e
    except Exception as e:  # pylint: disable=broad-except  (Orbax wraps some failures)
      raise CheckpointError(f"saving checkpoint {step} in {self.directory} failed: "
                            f"{_brief(e)}") from e

  def check(self) -> None:
    """Raises the error of a background save that has failed; never blocks.

    `CheckpointManager.check_for_errors` misses errors its finalize thread has already
    taken over from the checkpointer (Orbax 0.12), so a finished finalize thread with an
    exception is looked at too; `wait` then re-raises that exception.
    """
    ref = getattr(self._manager, "_finalize_thread", None)
    failed = ref is not None and ref.map(
        lambda t: t is not None and not t.is_alive() and t.exception is not None)
    with self._storage_errors(self._saving):
      if failed:
        self._manager.wait_until_finished()
      self._manager.check_for_errors()

  def restore(self, step: int, abstract_state) -> tuple[Any, int]:
    """(state, batches_consumed) of `step`; arrays land in `abstract_state`'s shardings."""
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
    return restored.state, int(restored.data["batches_consumed"])

  def restore_latest(self, abstract_state) -> tuple[Any, int, int] | None:
    """(state, batches consumed, step) of the newest step that restores, or None if none.

    Newer steps that fail are moved aside with a warning. When no step restores nothing
    is moved (the cause is more likely the code or config than every checkpoint) and a
    CheckpointError names the newest step and its error.
    """
    failed: list[tuple[int, Exception]] = []
    for step in sorted(self.all_steps(), reverse=True):
      try:
        state, consumed = self.restore(step, abstract_state)
      except Exception as e:  # pylint: disable=broad-except  (any damage: missing file, bad bytes)
        failed.append((step, e))
        continue
      for bad, error in failed:
        moved = self.quarantine(bad)
        logging.warning("Checkpoint %d in %s does not restore (%s); moved it to %s and "
                        "resumed from step %d", bad, self.directory, _brief(error), moved,
                        step)
      if failed:
        self._manager.reload()
      return state, consumed, step
    if failed:
      step, error = failed[0]
      raise CheckpointError(
          f"no checkpoint in {self.directory} restores (steps "
          f"{', '.join(str(s) for s, _ in failed)}); step {step}: {_brief(error)}. If the "
          f"model or code changed, use a new --workdir")
    return None

  def quarantine(self, step: int) -> epath.Path:
    """Moves checkpoints/<step> to checkpoints/corrupt-<step>-<time> (process 0 only)."""
    target = self.directory / f"corrupt-{step}-{time.strftime('%Y%m%d-%H%M%S')}"
    if jax.process_index() == 0:
      (self.directory / str(step)).rename(target)
    return target

  def restore_config(self, step: int) -> dict[str, Any]:
    return dict(self._manager.restore(step, args=ocp.args.Composite(
        config=ocp.args.JsonRestore())).config)

  def saved_config(self) -> tuple[int, dict[str, Any]] | None:
    """(step, config) of the newest checkpoint whose config item reads, or None."""
    for step in sorted(self.all_steps(), reverse=True):
      try:
        return step, self.restore_config(step)
      except Exception:  # pylint: disable=broad-except  (a damaged step: try the previous)
        continue
    return None

  def wait(self) -> None:
    """Blocks until the background save (if any) is on disk."""
    with self._storage_errors(self._saving):
      self._manager.wait_until_finished()

  def close(self) -> None:
    with self._storage_errors(self._saving):
      self._manager.close()


def _brief(error: Exception) -> str:
  """The head of an error's text: Orbax and TensorStore errors span many lines and end
  in their context dumps; the first line says what failed."""
  while (error.__cause__ or error.__context__) is not None and (
      not str(error).strip() or "See full TensorStore details" in str(error)):
    error = error.__cause__ or error.__context__  # the TensorStore error below names the file
  lines = [l.strip() for l in str(error).splitlines() if l.strip()]
  text = lines[0] if lines else ""
  return f"{type(error).__name__}: {text[:240]}{'...' if len(text) > 240 else ''}"
