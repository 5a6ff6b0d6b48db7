"""Device mesh, logical-axis rules and host-local <-> global arrays.

Models annotate parameters and activations with logical axis names ('batch', 'embed',
'mlp', 'heads', 'kv', 'vocab', 'length', ...). A rules table, kept in the config and
never in model code, maps those names onto the mesh axes ('data', 'fsdp', 'tensor').
The same code then runs on one CPU, 8 simulated devices, several hosts or a TPU pod.
"""

from collections.abc import Sequence
import contextlib
import dataclasses
import math
import os

from absl import logging
import flax.linen as nn
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from underrep_jax import config_schema

MESH_AXES = ("data", "fsdp", "tensor")

DEFAULT_RULES = config_schema.DEFAULT_RULES  # the mesh section's default (config_schema)

Rules = Sequence[tuple[str, str | Sequence[str] | None]]


def resolve_mesh_shape(shape: Sequence[int], num_devices: int) -> tuple[int, ...]:
  """Replaces a single -1 in `shape` by whatever makes the product `num_devices`."""
  shape = tuple(int(s) for s in shape)
  if shape.count(-1) > 1:
    raise ValueError(f"mesh shape {shape}: at most one axis may be -1")
  known = math.prod(s for s in shape if s != -1)
  if -1 in shape:
    if num_devices % known:
      raise ValueError(f"mesh shape {shape} does not divide {num_devices} devices")
    shape = tuple(num_devices // known if s == -1 else s for s in shape)
  if math.prod(shape) != num_devices:
    raise ValueError(f"mesh shape {shape} needs {math.prod(shape)} devices, "
                     f"but {num_devices} are available")
  return shape


def make_mesh(shape: Sequence[int] = (-1, 1, 1), axis_names: Sequence[str] = MESH_AXES,
              devices: Sequence[jax.Device] | None = None) -> Mesh:
  """Builds a mesh over all (or the given) devices; -1 in `shape` means "the rest"."""
  devices = list(devices) if devices is not None else jax.devices()
  shape = resolve_mesh_shape(shape, len(devices))
  # Auto axes: the compiler propagates shardings from the logical-axis constraints. With
  # jax's default Explicit axes every sharded gather or einsum would have to name its
  # output sharding.
  axis_types = (AxisType.Auto,) * len(shape)
  if devices == jax.devices():
    return jax.make_mesh(shape, tuple(axis_names), devices=devices, axis_types=axis_types)
  return Mesh(np.asarray(devices).reshape(shape), tuple(axis_names), axis_types=axis_types)


def auto_mesh(mesh: Mesh) -> Mesh:
  """The same devices with Auto axis types (see `make_mesh`), for meshes made elsewhere."""
  if all(t == AxisType.Auto for t in mesh.axis_types):
    return mesh
  return Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * len(mesh.axis_names))


def normalize_rules(rules: Rules | None) -> tuple[tuple[str, str | tuple[str, ...] | None], ...]:
  """Turns config rules (lists from ml_collections) into the tuples flax expects."""
  if rules is None:
    return DEFAULT_RULES
  out = []
  for name, axes in rules:
    if isinstance(axes, (list, tuple)):
      axes = tuple(axes) if axes else None
    out.append((name, axes))
  return tuple(out)


def logical_to_sharding(logical_specs, mesh: Mesh, rules: Rules | None = None):
  """Maps a tree of logical PartitionSpecs to NamedShardings on `mesh`."""
  return nn.logical_to_mesh_sharding(logical_specs, mesh, normalize_rules(rules))


def logical_to_pspec(logical_axes: Sequence[str | None], rules: Rules | None = None) -> PartitionSpec:
  return nn.logical_to_mesh_axes(tuple(logical_axes), normalize_rules(rules))


def batch_sharding(mesh: Mesh, rules: Rules | None = None, ndim: int = 2) -> NamedSharding:
  """Sharding of a [batch, length, ...] input array: batch split over the data axes."""
  return NamedSharding(mesh, logical_to_pspec(("batch",) + (None,) * (ndim - 1), rules))


def batch_mesh_axes(rules: Rules | None = None) -> tuple[str, ...]:
  """The mesh axes the logical 'batch' axis is split over (e.g. ('data', 'fsdp'))."""
  axes = logical_to_pspec(("batch",), rules)[0]
  if axes is None:
    return ()
  return (axes,) if isinstance(axes, str) else tuple(axes)


def data_shard(mesh, rules: Rules | None = None,
               process_index: int | None = None) -> tuple[int, int]:
  """(index, count) of the data shard this process reads, derived from the mesh.

  A device's data slice is its position along the mesh axes that 'batch' maps to; a
  process reads the rows of the slices its devices hold. Processes holding the same
  slices (a tensor axis that spans hosts) read the same shard, so `count` is the number
  of distinct shards, not `process_count` (T5X `get_data_layout` has the same idea).
  With model axes inside one host this is (process_index, process_count). `mesh` needs
  only `.devices` (an array of objects with `process_index`) and `.axis_names`.
  """
  process_index = jax.process_index() if process_index is None else int(process_index)
  names = tuple(mesh.axis_names)
  devices = np.asarray(mesh.devices)
  batch_axes = batch_mesh_axes(rules)
  unknown = [a for a in batch_axes if a not in names]
  if unknown:
    raise ValueError(f"logical axis 'batch' maps to mesh axes {unknown} that the mesh "
                     f"{names} does not have")
  dims = [names.index(a) for a in batch_axes]
  sizes = [devices.shape[d] for d in dims]
  slices: dict[int, set[int]] = {}
  for position, device in np.ndenumerate(devices):
    flat = int(np.ravel_multi_index([position[d] for d in dims], sizes)) if dims else 0
    slices.setdefault(int(device.process_index), set()).add(flat)
  if process_index not in slices:
    raise ValueError(f"process {process_index} holds no device of the mesh "
                     f"(processes {sorted(slices)})")
  shards = sorted({frozenset(s) for s in slices.values()}, key=min)
  disjoint = sum(len(s) for s in shards) == len(frozenset().union(*shards))
  if not disjoint or len({len(s) for s in shards}) != 1:
    raise ValueError(
        f"mesh {dict(zip(names, devices.shape))} with batch over {batch_axes}: processes "
        f"hold overlapping or unequal sets of data slices {[sorted(s) for s in shards]}; "
        f"keep the model axes inside one host or spanning whole data slices")
  return shards.index(frozenset(slices[process_index])), len(shards)


@dataclasses.dataclass(frozen=True)
class Topology:
  """The device mesh and the logical-axis rules of one job, built once and handed on.

  Loading places parameters by it, the train step and the evaluation drivers are traced
  under it, and each host's data shard is read off it (`data_shard`), so the three can
  never disagree about where an array lives.
  """
  mesh: Mesh
  rules: tuple[tuple[str, str | tuple[str, ...] | None], ...] = DEFAULT_RULES

  @classmethod
  def create(cls, shape: Sequence[int] = (-1, 1, 1), rules: Rules | None = None,
             devices: Sequence[jax.Device] | None = None) -> "Topology":
    return cls(auto_mesh(make_mesh(shape, devices=devices)), normalize_rules(rules))

  @classmethod
  def from_config(cls, mesh_config, devices: Sequence[jax.Device] | None = None) -> "Topology":
    """From a config's `mesh` section: `shape` (data, fsdp, tensor; -1 = the rest), `rules`."""
    return cls.create(tuple(mesh_config.shape), mesh_config.rules, devices)

  @classmethod
  def of(cls, mesh: Mesh, rules: Rules | None = None) -> "Topology":
    """A topology around a mesh made elsewhere (its axes made Auto)."""
    return cls(auto_mesh(mesh), normalize_rules(rules))

  @property
  def num_devices(self) -> int:
    return int(self.mesh.devices.size)

  @property
  def data_parallel_size(self) -> int:
    """How many ways the batch is split (the product of the mesh axes 'batch' maps to)."""
    return math.prod(self.mesh.shape[a] for a in batch_mesh_axes(self.rules))

  def data_shard(self, process_index: int | None = None) -> tuple[int, int]:
    """(index, count) of this host's data shard (`data_shard` below)."""
    return data_shard(self.mesh, self.rules, process_index)

  def sharding(self, logical_axes: Sequence[str | None]) -> NamedSharding:
    return NamedSharding(self.mesh, logical_to_pspec(logical_axes, self.rules))

  def batch_sharding(self, ndim: int = 2) -> NamedSharding:
    return batch_sharding(self.mesh, self.rules, ndim)

  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, PartitionSpec())

  def shardings_of(self, logical_specs):
    """A tree of logical PartitionSpecs (e.g. `nn.get_partition_spec(boxed)`) as shardings."""
    return logical_to_sharding(logical_specs, self.mesh, self.rules)

  def to_global(self, host_batch):
    """Each host's rows of a batch as one global array per leaf."""
    return host_local_to_global(host_batch, self.mesh, self.rules)

  @contextlib.contextmanager
  def context(self):
    """The mesh and rules in context, as models' activation constraints need when traced."""
    with jax.set_mesh(self.mesh), nn.logical_axis_rules(self.rules):
      yield self


def host_local_to_global(batch, mesh: Mesh, rules: Rules | None = None):
  """Turns each host's slice of the batch into one global array per leaf."""
  def to_global(x):
    x = np.asarray(x)
    return jax.make_array_from_process_local_data(batch_sharding(mesh, rules, x.ndim), x)
  return jax.tree.map(to_global, batch)


def global_to_host_local(array) -> np.ndarray:
  """Gathers a (possibly multi-host) array to a full numpy array on every host."""
  from jax.experimental import multihost_utils
  if jax.process_count() == 1:
    return np.asarray(array)
  return np.asarray(multihost_utils.process_allgather(array, tiled=True))


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """Calls jax.distributed.initialize when more than one process is launched.

  Arguments fall back to UNDERREP_COORDINATOR / UNDERREP_NUM_PROCESSES /
  UNDERREP_PROCESS_ID. On Cloud TPU and SLURM, JAX discovers everything itself, so
  `num_processes` may stay unset there (set UNDERREP_DISTRIBUTED=1 to force the call).
  """
  coordinator_address = coordinator_address or os.environ.get("UNDERREP_COORDINATOR")
  if num_processes is None and os.environ.get("UNDERREP_NUM_PROCESSES"):
    num_processes = int(os.environ["UNDERREP_NUM_PROCESSES"])
  if process_id is None and os.environ.get("UNDERREP_PROCESS_ID"):
    process_id = int(os.environ["UNDERREP_PROCESS_ID"])
  forced = os.environ.get("UNDERREP_DISTRIBUTED") == "1"
  if not forced and (num_processes is None or num_processes <= 1):
    return
  kwargs = {}
  if coordinator_address:
    kwargs["coordinator_address"] = coordinator_address
  if num_processes is not None:
    kwargs["num_processes"] = num_processes
  if process_id is not None:
    kwargs["process_id"] = process_id
  if os.environ.get("JAX_PLATFORMS") == "cpu":  # CPU processes need a collectives backend
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  logging.info("jax.distributed.initialize(%s)", kwargs)
  jax.distributed.initialize(**kwargs)
