"""Every job config is assembled from the declared sections, and every field overrides."""

import json
import pathlib
import subprocess
import sys

import ml_collections
import pytest

from underrep_jax import config_schema
from underrep_jax import parallel
from underrep_jax import validation

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
# (config file, presets): every job that the launcher runs.
JOBS = [("instructalign.py", ("tiny", "bloomz-560m", "bloomz-1b1", "mt0-base")),
        ("instruct.py", ("tiny", "bloomz-560m")),
        ("evaluate.py", ("tiny", "full", "paper")),
        ("xicl.py", ("tiny", "paper")),
        ("univar.py", ("tiny", "paper")),
        ("univar_place.py", ("tiny", "paper"))]
TRAINING = ("instructalign.py", "instruct.py", "univar.py")


_PARSE = """
import sys
from absl import flags
from ml_collections import config_flags
holder = config_flags.DEFINE_config_file("config", None, "", lock_config=True)
flags.FLAGS(["prog", *sys.argv[1:]])
print(holder.value.to_json())
"""


def _parse(argv: list[str]) -> ml_collections.ConfigDict:
  """The config as the launcher's flag parser (absl + ml_collections on the global flags,
  in a fresh process) builds it from a command line."""
  result = subprocess.run([sys.executable, "-c", _PARSE, *argv], capture_output=True,
                          text=True, check=False)
  if result.returncode:
    raise ValueError(result.stderr.strip().splitlines()[-1])
  return ml_collections.ConfigDict(json.loads(result.stdout))


@pytest.mark.parametrize("name,presets", JOBS)
def test_every_job_has_the_declared_sections(name, presets):
  for preset in presets:
    config = _parse([f"--config={CONFIGS / name}:{preset}"])
    # The same model section everywhere: every declared field, and no other.
    assert set(config.model) == set(config_schema.model()), (name, preset)
    assert set(config.mesh) == set(config_schema.mesh()), (name, preset)
    if "translator" in config:  # a second model section, the same fields
      assert set(config.translator) == set(config_schema.model()), (name, preset)
    if name in TRAINING:
      assert set(config_schema.train()) <= set(config.train), (name, preset)
      assert set(config.optimizer) == set(config_schema.optimizer()), (name, preset)


def test_mesh_rules_and_no_decay_patterns_override_from_the_command_line():
  rules = "(('batch', 'data'), ('embed', 'fsdp'), ('mlp', 'tensor'), ('vocab', 'tensor'))"
  config = _parse([f"--config={CONFIGS / 'instructalign.py'}:tiny",
                   f"--config.mesh.rules={rules}", "--config.mesh.shape=(2,4,1)",
                   "--config.optimizer.no_decay_patterns=('bias',)",
                   "--config.model.scan_layers=True"])
  topology = parallel.Topology.from_config(config.mesh)
  assert dict(topology.rules)["batch"] == "data"
  assert topology.data_parallel_size == 2  # 4 with the default rules (data x fsdp)
  # The same rules decide what validation asks of the batch.
  assert validation.data_parallel_size(config.mesh.shape, 8, config.mesh.rules) == 2
  assert validation.data_parallel_size(config.mesh.shape, 8, config_schema.DEFAULT_RULES) == 8
  assert list(config.optimizer.no_decay_patterns) == ["bias"]
  assert config.model.scan_layers is True


def test_an_undeclared_field_is_refused():
  with pytest.raises(ValueError, match="rule"):
    _parse([f"--config={CONFIGS / 'evaluate.py'}:tiny", "--config.mesh.rule=x"])
