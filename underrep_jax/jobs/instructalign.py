"""Job: InstructAlign continual instruction tuning (configs/instructalign.py).

The method-specific part is small: choose the alignment mixture (plus replay) and hand
it to the general instruction-tuning job (`jobs/instruct.train_on_mixture`: vocabulary,
model, the shared training loop, checkpoints, export).
"""

import pathlib

import ml_collections

import tasks
from underrep_jax.data import input_pipeline
from underrep_jax.data import languages
from underrep_jax.jobs import instruct
from underrep_jax.models import runtime

SUMMARY_FILE = "instructalign_summary.json"


def alignment_mixture(data: ml_collections.ConfigDict) -> str:
  """Registers (once) and names the alignment mixture, without replay.

  `data.mixture`, when set, names a registered task or mixture that replaces the one the
  objective fields choose.
  """
  if data.get("mixture"):
    return tasks.registry.require(data.mixture, "config.data.mixture")
  return tasks.instructalign.alignment_mixture(
      data.objective_set, data.corpus, data.pivot or None, seen_languages(data) or None,
      data.xss_negatives)


def seen_languages(data: ml_collections.ConfigDict) -> list[str]:
  """The languages the config aligns (`data.languages`; empty: the mixture's default)."""
  return [c.strip() for c in data.languages.split(",") if c.strip()]


def mixture_name(data: ml_collections.ConfigDict,
                 architecture: str = input_pipeline.DECODER_ONLY) -> str:
  """The alignment mixture with replay mixed in if asked. Replay examples are drawn with
  `data.seed`; decoder-only models read a file source's inputs and targets as one text
  joined by a space (xP3's format, as the original)."""
  return instruct.with_replay(data, alignment_mixture(data), architecture)


def run(config: ml_collections.ConfigDict, workdir: str) -> None:
  pathlib.Path(workdir).mkdir(parents=True, exist_ok=True)
  source = runtime.ModelSource.from_config(config.model)
  tasks.registry.import_modules(config.task_modules)
  aligned = alignment_mixture(config.data)
  mixture = instruct.with_replay(config.data, aligned, instruct.architecture_of(source))
  eval_languages = seen_languages(config.data) or languages.codes("seen")
  instruct.train_on_mixture(config, workdir, mixture, source, summary_file=SUMMARY_FILE,
                            heldout_mixture=aligned, eval_languages=eval_languages)
