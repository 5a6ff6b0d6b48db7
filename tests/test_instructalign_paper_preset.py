"""The `bloomz-560m` paper preset on a checkpoint laid out exactly as the published one.

The directory is built from bigscience/bloomz-560m's published config.json (sizes shrunk)
with its tensor names (no `transformer.` prefix, no `lm_head`): the preset must start
from it, train a few steps with the paper's recipe and export a model transformers loads.
"""

import json

import numpy as np

import launcher  # tests/launcher.py
import published_checkpoints  # tests/published_checkpoints.py
from tolerances import float32_tol  # tests/tolerances.py


def test_bloomz_560m_preset_trains_and_exports(tmp_path):
  import torch
  import transformers
  from underrep_jax.models import hf

  source = published_checkpoints.write_checkpoint("bloomz-560m", tmp_path / "bloomz-560m")
  assert "n_embed" in json.loads((source / "config.json").read_text())  # as published
  workdir = tmp_path / "run"
  launcher.run_main(
      f"--config={launcher.REPO / 'configs' / 'instructalign.py'}:bloomz-560m",
      f"--workdir={workdir}", f"--config.model.path={source}",
      "--config.data.corpus=nusaxmt", "--config.data.pivot=ind", "--config.data.languages=sun",
      "--config.train.steps=3", "--config.train.batch_size=4", "--config.train.log_every=1",
      "--config.train.checkpoint_every=3", timeout=900)

  summary = json.loads((workdir / "instructalign_summary.json").read_text())
  assert summary["step"] == 3 and summary["family"] == "bloom"
  assert (summary["loss_on"], summary["prefix_lm"], summary["max_length"]) == ("all", False, 128)
  metrics = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [m["step"] for m in metrics] == [1, 2, 3]
  assert all(np.isfinite(m["loss"]) for m in metrics)

  export = workdir / "export"
  config = json.loads((export / "config.json").read_text())
  assert config["hidden_size"] == 64 and "n_embed" not in config  # no stale alias
  theirs = transformers.BloomForCausalLM.from_pretrained(str(export)).eval()
  ids = np.asarray([[5, 17, 42, 9, 2]])
  with torch.no_grad():
    reference = theirs(torch.as_tensor(ids)).logits.numpy()
  ours = np.asarray(hf.load(export).logits(ids, np.ones_like(ids)))
  # Float32 JAX against PyTorch on the exported weights: 2 layers of width 64 (MLP 256)
  # and the tied head; a tensor written in the wrong layout moves the logits by O(1).
  atol = float32_tol(4 * 64, depth=3, scale=max(1.0, np.abs(reference).max()))
  np.testing.assert_allclose(ours, reference, rtol=0, atol=atol)
