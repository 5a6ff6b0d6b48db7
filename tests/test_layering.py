"""TensorFlow stays behind the data layer: model and training code never import it."""

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
