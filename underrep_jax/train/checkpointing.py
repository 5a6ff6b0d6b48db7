"""Orbax checkpoints in WORKDIR/checkpoints/<step>/ with three items.

  state: the TrainState (params, optimizer state, step), restored directly into the
    target shardings;
  data:  JSON {"batches_consumed": n}, the position to rebuild the input pipeline at;
  config: the run's config as JSON, for the record (never read back by the loop).

Saves are asynchronous: `save` returns once the arrays are copied off the devices, and
the files are written in the background. Orbax writes into a temporary directory and
renames it when complete, so a run killed at any moment leaves only whole checkpoints
behind; the partial ones are removed on the next start. Paths may be local or gs://.
"""

import json
from typing import Any

from etils import epath
import orbax.checkpoint as ocp

ITEMS = ("state", "data", "config")


def config_to_json(config) -> dict[str, Any]:
  """A JSON-safe dict of an ml_collections config (or any mapping)."""
  if hasattr(config, "to_json_best_effort"):
    return json.loads(config.to_json_best_effort())
  return json.loads(json.dumps(dict(config), default=str))


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
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=ITEMS)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state, batches_consumed: int, config) -> None:
    """Starts an asynchronous save of step `step` (overwriting nothing)."""
    self._manager.save(step, force=True, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=ocp.args.JsonSave({"batches_consumed": int(batches_consumed)}),
        config=ocp.args.JsonSave(config_to_json(config))))

  def restore(self, step: int, abstract_state) -> tuple[Any, int]:
    """(state, batches_consumed) of `step`; arrays land in `abstract_state`'s shardings."""
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
    return restored.state, int(restored.data["batches_consumed"])

  def restore_config(self, step: int) -> dict[str, Any]:
    return dict(self._manager.restore(step, args=ocp.args.Composite(
        config=ocp.args.JsonRestore())).config)

  def wait(self) -> None:
    """Blocks until the background save (if any) is on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()
