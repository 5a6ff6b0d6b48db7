"""The InstructAlign job end to end: tiny from-scratch model, resume, HF export."""

import json

import numpy as np
import pytest

import launcher  # tests/launcher.py
from tolerances import float32_tol  # tests/tolerances.py

REPO = launcher.REPO
SMALL = ["--config.data.corpus=nusaxmt", "--config.data.pivot=ind",
         "--config.data.languages=sun", "--config.data.vocab_size=400",
         "--config.data.inputs_length=96", "--config.data.targets_length=32",
         "--config.train.batch_size=8", "--config.train.checkpoint_every=3",
         "--config.train.log_every=1"]


def _run(workdir, *args):
  """Runs the job from the workdir's parent with a relative --workdir, as users do."""
  launcher.run_main(f"--config={REPO / 'configs' / 'instructalign.py'}:tiny",
                    f"--workdir={workdir.name}", *SMALL, *args, cwd=workdir.parent,
                    timeout=900)
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
  # JAX against PyTorch on the tiny BLOOM (hidden 128, MLP 512, 2 layers and a head),
  # relative to its logits; a weight exported in the wrong layout changes them by O(1).
  atol = float32_tol(4 * 128, depth=3, scale=max(1.0, np.abs(reference).max()))
  np.testing.assert_allclose(np.asarray(ours.logits(ids, np.ones_like(ids))), reference,
                             rtol=0, atol=atol)


def _pretrained_dir(path, family):
  """A tiny random HF checkpoint with a real BPE tokenizer trained on NusaX."""
  import tokenizers
  from tokenizers import decoders, models as tok_models, pre_tokenizers, trainers
  from underrep_jax.data import readers
  from underrep_jax.models import testing
  texts = [r["text"] for lang in ("ind", "sun", "eng")
           for r in readers.nusax_sentiment(lang, "train")]
  tok = tokenizers.Tokenizer(tok_models.BPE(unk_token="<unk>"))
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  tok.train_from_iterator(texts, trainers.BpeTrainer(
      vocab_size=400, special_tokens=["<pad>", "</s>", "<unk>"],
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
  testing.save_tiny(family, path, vocab_size=tok.get_vocab_size())
  tok.save(str(path / "tokenizer.json"))
  (path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
  return path


@pytest.mark.parametrize("family", ["bloom", "mt5"])
def test_starts_from_a_pretrained_checkpoint(tmp_path, family):
  """With a zero learning rate the exported weights must be the checkpoint's, bit for bit:
  the job loaded them (not a fresh init), trained through them and wrote them back."""
  from safetensors.numpy import load_file
  source = _pretrained_dir(tmp_path / "source", family)
  workdir = tmp_path / "run"
  metrics = _run(workdir, f"--config.model.path={source}", "--config.data.vocab=model",
                 "--config.model.family=t5" if family == "mt5" else "--config.model.family=bloom",
                 "--config.train.steps=2", "--config.optimizer.learning_rate=0.0",
                 "--config.optimizer.schedule=constant", "--config.optimizer.warmup_steps=0")
  assert [m["step"] for m in metrics] == [1, 2]
  assert metrics[0]["loss"] == pytest.approx(metrics[1]["loss"], rel=0.5)
  exported, original = load_file(workdir / "export" / "model.safetensors"), load_file(
      source / "model.safetensors")
  shared = set(exported) & set(original)
  assert len(shared) >= len(original) - 1  # tied heads may be stored once
  for name in shared:
    np.testing.assert_array_equal(exported[name], original[name], err_msg=name)
  assert (workdir / "export" / "tokenizer.json").read_bytes() == (
      source / "tokenizer.json").read_bytes()
