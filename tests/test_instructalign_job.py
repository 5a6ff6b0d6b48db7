"""The InstructAlign job end to end: tiny from-scratch model, resume, HF export."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SMALL = ["--config.data.corpus=nusaxmt", "--config.data.pivot=ind",
         "--config.data.languages=sun", "--config.data.vocab_size=400",
         "--config.data.inputs_length=96", "--config.data.targets_length=32",
         "--config.train.batch_size=8", "--config.train.checkpoint_every=3",
         "--config.train.log_every=1"]


def _run(workdir, *args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", XLA_FLAGS="")
  result = subprocess.run(
      [sys.executable, "-m", "underrep_jax.main", "--config=configs/instructalign.py:tiny",
       f"--workdir={workdir}", *SMALL, *args],
      cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
  assert result.returncode == 0, result.stderr[-4000:]
  return [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("ia_tiny")
  first = _run(workdir, "--config.train.steps=6")
  resumed = _run(workdir, "--config.train.steps=9")
  return workdir, first, resumed


def test_trains_checkpoints_and_resumes(trained):
  workdir, first, resumed = trained
  assert [m["step"] for m in first] == list(range(1, 7))
  # The second run restored step 6 and did only steps 7-9.
  assert [m["step"] for m in resumed] == list(range(1, 10))
  assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()
                if p.name.isdigit()) == [3, 6, 9]
  assert all(np.isfinite(m["loss"]) for m in resumed)
  summary = json.loads((workdir / "instructalign_summary.json").read_text())
  assert summary["step"] == 9 and summary["loss_on"] == "targets"
  assert summary["mixture"] == "instructalign_pair_xss_nusaxmt_ind_sun"


def test_export_loads_in_transformers_with_the_same_logits(trained):
  import torch
  import transformers
  from underrep_jax.models import hf
  export = trained[0] / "export"
  ours = hf.load(export)
  tokenizer = transformers.PreTrainedTokenizerFast.from_pretrained(str(export))
  ids = tokenizer(["Translate this from Indonesian to Sundanese.\nSaya makan nasi."],
                  add_special_tokens=False, return_tensors="np")["input_ids"]
  assert ids.shape[1] > 3 and tokenizer.unk_token_id not in ids
  theirs = transformers.BloomForCausalLM.from_pretrained(str(export)).eval()
  with torch.no_grad():
    reference = theirs(torch.as_tensor(ids)).logits.numpy()
  np.testing.assert_allclose(np.asarray(ours.logits(ids, np.ones_like(ids))), reference,
                             atol=1e-4)
