"""Checks a job's config before any work starts (no model loaded, no data read).

Each rule raises `errors.ConfigError` naming the field, the value and what would work, so a
bad override costs a second instead of a TensorFlow error after a minute of set-up. The
launcher calls `validate` before `job.run`; `train.loop` calls `validate_training` too, for
library users.
"""

import math

from underrep_jax.errors import ConfigError


def _section(config, name):
  return config[name] if name in config else None


def data_parallel_size(mesh_shape, num_devices: int, rules=None) -> int:
  """Devices the global batch is split over: the mesh axes the "batch" rule names."""
  from underrep_jax import parallel  # jax: imported only when a config has a mesh
  shape = parallel.resolve_mesh_shape(mesh_shape, num_devices)
  axes = dict(parallel.normalize_rules(rules)).get("batch")
  axes = (axes,) if isinstance(axes, str) else tuple(axes or ())
  return math.prod(shape[parallel.MESH_AXES.index(a)] for a in axes)


def validate_training(config, num_devices: int | None = None) -> None:
  """train.steps and train.batch_size positive; mesh fits the devices; batch divides."""
  train = _section(config, "train")
  if train is None:
    return
  steps, epochs = train.get("steps"), train.get("epochs") or 0
  if not epochs and (steps is None or int(steps) <= 0):
    raise ConfigError(f"train.steps={steps}: must be a positive number of optimizer updates")
  batch = train.get("batch_size")
  if batch is None or int(batch) <= 0:
    raise ConfigError(f"train.batch_size={batch}: must be a positive number of rows")
  batch = int(batch)
  microbatches = int(train.get("microbatches") or 1)
  if microbatches <= 0 or batch % microbatches:
    raise ConfigError(f"train.microbatches={microbatches} must be positive and divide "
                      f"train.batch_size={batch}")
  mesh = _section(config, "mesh")
  if mesh is None:
    return
  import jax
  num_devices = num_devices or jax.device_count()
  shape = tuple(mesh.get("shape") or (-1, 1, 1))
  try:
    dp = data_parallel_size(shape, num_devices, mesh.get("rules"))
  except ValueError as e:
    raise ConfigError(f"mesh.shape={shape}: {e}") from None
  per_update = batch // microbatches
  if per_update % dp:
    raise ConfigError(
        f"train.batch_size={batch}"
        + (f" / train.microbatches={microbatches} = {per_update}" if microbatches > 1 else "")
        + f" is not divisible by the data-parallel size {dp} (mesh.shape={shape} on "
        f"{num_devices} devices); use a multiple of {dp}")


def validate_evaluation(config) -> None:
  """Registered tasks, and language filters that leave something to evaluate."""
  import tasks  # registers the project's tasks (SeqIO and TensorFlow: evaluation jobs only)
  from underrep_jax.jobs import evaluate as evaluate_job
  job = config.get("job")
  if job == "evaluate":
    tasks.registry.import_modules(config.get("task_modules") or "")
    evaluate_job.select(config)
  elif job == "xicl":
    tasks.evaluation.classification_dataset(config.get("query_task"))
    tasks.evaluation.dataset_languages(
        config.get("query_task"), tasks.registry.split_names(config.get("query_languages")))


def validate(config, num_devices: int | None = None) -> None:
  """Every rule that applies to `config`; raises ConfigError on the first broken one."""
  validate_training(config, num_devices)
  if config.get("job") in ("evaluate", "xicl"):
    validate_evaluation(config)
  if config.get("job") == "instruct":
    validate_instruct(config)


def validate_instruct(config) -> None:
  """The general instruction-tuning job needs a mixture to train on."""
  data = _section(config, "data")
  if data is None or not str(data.get("mixture") or "").strip():
    raise ConfigError("config.data.mixture is empty: name a registered SeqIO task or mixture "
                      "(--config.data.mixture=NAME, with --config.task_modules=MODULE for one "
                      "of your own)")
