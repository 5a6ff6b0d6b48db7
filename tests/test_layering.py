"""TensorFlow stays behind the data layer: model and training code never import it."""

import ast
import pathlib
import subprocess
import sys


def test_models_and_training_do_not_import_tensorflow():
  code = ("import sys, pkgutil, importlib\n"
          "import underrep_jax.parallel, underrep_jax.main, underrep_jax.evaluation.metrics\n"
          "import underrep_jax.models, underrep_jax.train\n"
          "for pkg in (underrep_jax.models, underrep_jax.train):\n"
          "  for m in pkgutil.iter_modules(pkg.__path__):\n"
          "    importlib.import_module(f'{pkg.__name__}.{m.name}')\n"
          "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'seqio'))\n"
          "print(bad[:5])\n"
          "sys.exit(1 if bad else 0)\n")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
  assert result.returncode == 0, result.stdout + result.stderr[-2000:]


# Which project packages each package may import (module-level or inside functions); the
# package READMEs state the same rooms. "base" is the top-level foundation modules.
BASE = {"errors", "files", "config_schema", "parallel"}
ALLOWED = {
    "base": {"base"},
    "models": {"base", "models"},
    "train": {"base", "train", "validation"},
    "data": {"base", "data", "models"},
    "evaluation": {"base", "evaluation", "models", "data"},
    "univar": {"base", "univar", "models", "data"},
    "tasks": {"base", "tasks", "data", "evaluation"},
    # the runner reaches jobs only by name (importlib), as the launcher does
    "experiments": {"base", "experiments", "data", "validation", "train"},
}


def _room(module: str) -> str:
  parts = module.split(".")
  if parts[0] == "tasks":
    return "tasks"
  if parts[0] != "underrep_jax" or len(parts) == 1:
    return ""
  return "base" if parts[1] in BASE else parts[1]


def _imports(path: pathlib.Path, package: str) -> set[str]:
  tree = ast.parse(path.read_text(encoding="utf-8"))
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found |= {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
      base = node.module if not node.level else package
      found |= {f"{base}.{alias.name}" for alias in node.names} | {base}
  return found


def test_each_package_imports_only_the_rooms_it_may():
  root = pathlib.Path(__file__).resolve().parents[1]
  bad = []
  for path in sorted([*root.glob("underrep_jax/**/*.py"), *root.glob("tasks/*.py")]):
    module = ".".join(path.relative_to(root).with_suffix("").parts)
    room = _room(module)
    if room not in ALLOWED:
      continue  # jobs, main, show, validation, instruction_config: may use any room
    for name in _imports(path, module.rsplit(".", 1)[0]):
      target = _room(name)
      if target and target not in ALLOWED[room]:
        bad.append(f"{module} imports {name} ({room} -> {target})")
  assert not bad, "\n".join(bad)
