"""parallel.data_shard: which data shard each process reads, from the mesh layout.

Fake meshes stand in for multi-host ones: a numpy array of objects with a
`process_index`, arranged like `Mesh.devices` over the axes (data, fsdp, tensor).
"""

import dataclasses

import numpy as np
import pytest

from underrep_jax import parallel


@dataclasses.dataclass(frozen=True)
class FakeDevice:
  id: int
  process_index: int


@dataclasses.dataclass
class FakeMesh:
  devices: np.ndarray
  axis_names: tuple[str, ...] = parallel.MESH_AXES


def _mesh(shape, process_of):
  """A mesh of the given shape; `process_of(position)` is each device's host."""
  devices = np.empty(shape, dtype=object)
  for i, position in enumerate(np.ndindex(*shape)):
    devices[position] = FakeDevice(i, process_of(position))
  return FakeMesh(devices)


def _layout(mesh, processes, rules=None):
  return [parallel.data_shard(mesh, rules, process_index=p) for p in range(processes)]


def test_pure_data_parallel_over_two_hosts_is_process_index():
  # 8 devices on the data axis, 4 per host.
  mesh = _mesh((8, 1, 1), lambda pos: pos[0] // 4)
  assert _layout(mesh, 2) == [(0, 2), (1, 2)]


def test_tensor_axis_spanning_two_hosts_reads_one_shard():
  # data=2, tensor=8 over 4 hosts of 4 devices: hosts 0,1 hold data slice 0, hosts 2,3
  # slice 1. Hosts that split one model replica must read the same rows.
  mesh = _mesh((2, 1, 8), lambda pos: pos[0] * 2 + pos[2] // 4)
  assert _layout(mesh, 4) == [(0, 2), (0, 2), (1, 2), (1, 2)]


def test_tensor_axis_over_all_hosts_is_one_shard():
  mesh = _mesh((1, 1, 8), lambda pos: pos[2] // 4)
  assert _layout(mesh, 2) == [(0, 1), (0, 1)]


def test_fsdp_and_data_over_four_hosts():
  # data=2 x fsdp=4 x tensor=2 = 16 devices, 4 per host; batch over (data, fsdp) gives 8
  # slices, each host holds 2 of them (a tensor pair stays inside a host).
  mesh = _mesh((2, 4, 2), lambda pos: pos[0] * 2 + pos[1] // 2)
  assert _layout(mesh, 4) == [(0, 4), (1, 4), (2, 4), (3, 4)]
  # With the batch over 'data' only, the fsdp hosts of one data row share a shard.
  rules = [("batch", "data")] + [r for r in parallel.DEFAULT_RULES if r[0] != "batch"]
  assert _layout(mesh, 4, rules) == [(0, 2), (0, 2), (1, 2), (1, 2)]


def test_shard_order_follows_the_mesh_not_the_process_ids():
  # Hosts numbered in reverse along the data axis: host 1 holds the first rows.
  mesh = _mesh((8, 1, 1), lambda pos: 1 - pos[0] // 4)
  assert _layout(mesh, 2) == [(1, 2), (0, 2)]


def test_single_process_on_the_real_devices():
  mesh = parallel.make_mesh((-1, 1, 1))
  assert parallel.data_shard(mesh) == (0, 1)


def test_overlapping_slices_are_a_clear_error():
  # Host 0 holds data slices {0, 1} (part of each), host 1 holds {0, 1} partly too but
  # host 2 only {1}: no consistent split of the rows.
  owners = {(0, 0, 0): 0, (0, 0, 1): 1, (1, 0, 0): 0, (1, 0, 1): 2}
  mesh = _mesh((2, 1, 2), lambda pos: owners[pos])
  with pytest.raises(ValueError, match=r"overlapping or unequal sets of data slices"):
    parallel.data_shard(mesh, process_index=0)


def test_unknown_batch_axis_is_a_clear_error():
  mesh = _mesh((2, 1, 1), lambda pos: 0)
  with pytest.raises(ValueError, match=r"maps to mesh axes \['pipeline'\]"):
    parallel.data_shard(mesh, [("batch", "pipeline")], process_index=0)
