"""No test-split example of an evaluated task reaches any training stage of the miniature
experiment (configs/experiments/miniature.py, tasks/miniature.py).

The training texts are read back from what the training stages read: the SeqIO sources
of their mixtures (and of the replay source) on the split their configs name, and the
test texts from the evaluation readers. The prompts wrap a text in lines of their own
("Text: ...", "...\\nAnswer:"), so each training string is cut into lines and "Label:
text" tails; a sample of the longer test texts is also searched as plain substrings.
"""

import pathlib
import random

import seqio

from underrep_jax.data import readers
from underrep_jax.experiments import configs as exp_configs

import tasks.miniature  # noqa: F401  (registers the miniature's tasks)

MINIATURE = pathlib.Path(__file__).resolve().parents[1] / "configs" / "experiments" / "miniature.py"
EVALUATED = {"nusax_senti": readers.nusax_sentiment,
             "nusatranslation_senti": readers.nusatranslation_sentiment,
             "sib200_topic": readers.sib200_topic}


def _test_texts() -> set[str]:
  out = set()
  for dataset, read in EVALUATED.items():
    for lang in readers.available_languages(dataset):
      out |= {r["text"].strip() for r in read(lang, "test")}
  return out


def _leaves(provider) -> list[seqio.Task]:
  if isinstance(provider, seqio.Task):
    return [provider]
  return [t for sub in provider.tasks for t in _leaves(sub)]


def _source_strings(name: str, split: str) -> list[str]:
  """Every string feature of every source row of `name`'s tasks on `split`."""
  out, read = [], set()
  for task in _leaves(seqio.get_mixture_or_task(name)):
    # InstructAlign's objectives on one corpus and language share one source of pairs.
    key = task.name.split("_", 2)[2] if task.name.startswith("ia_") else task.name
    if split not in task.source.splits or key in read:
      continue
    read.add(key)
    for row in task.source.get_dataset(split=split, shuffle=False).as_numpy_iterator():
      out += [v.decode() for v in row.values() if isinstance(v, bytes)]
  return out


def _segments(text: str) -> set[str]:
  out = set()
  for line in text.split("\n"):
    line = line.strip()
    out.add(line)
    if ": " in line:
      out.add(line.split(": ", 1)[1].strip())
  return out


def test_no_test_split_text_reaches_a_training_stage():
  config = exp_configs.load_job_config(MINIATURE, "default")
  read = set()  # (mixture or task, split) the training stages read
  for name in config.stages.keys():
    stage = config.stages[name].config
    if stage.job not in ("instruct", "instructalign"):
      continue
    assert stage.data.mixture, name
    read.add((stage.data.mixture, stage.data.split))
    if stage.data.replay:
      read.add((stage.data.replay, stage.data.split))
  assert read == {("miniature_base", "train"), ("miniature_align_pair_xss", "train"),
                  ("miniature_instruct", "train")}
  strings = [s for name, split in sorted(read) for s in _source_strings(name, split)]
  assert len(strings) > 20_000
  test = _test_texts()
  segments = set()
  for s in strings:
    segments |= _segments(s)
  leaked = sorted(t for t in test if t in segments)
  assert not leaked, f"{len(leaked)} test texts in training data, e.g. {leaked[:3]}"
  joined = "\x00".join(strings)
  long_texts = sorted(t for t in test if len(t) >= 40 or "\n" in t)
  sample = random.Random(0).sample(long_texts, min(400, len(long_texts)))
  leaked = [t for t in sample if t in joined]
  assert not leaked, f"test texts inside training strings, e.g. {leaked[:3]}"


def test_the_check_would_see_a_leak():
  """The segmenting finds a text where the prompts put it."""
  from underrep_jax.data import prompts
  text = readers.nusax_sentiment("eng", "test")[0]["text"]
  for prompt in prompts.classification_prompts(prompts.SENTIMENT, "sentiment"):
    assert text.strip() in _segments(prompt.fill(text, "eng")), prompt.name
  assert text.strip() in _segments(prompts.fill_mt_prompt(text, "eng", "ind"))
