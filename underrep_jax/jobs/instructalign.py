"""Job: InstructAlign continual instruction tuning (configs/instructalign.py).

The method-specific part is small: choose the alignment mixture (plus replay) and hand
it to the general instruction-tuning job (`jobs/instruct.train_on_mixture`: vocabulary,
model, the shared training loop, checkpoints, export).
"""

import pathlib

import ml_collections

import tasks
from underrep_jax.data import input_pipeline
from underrep_jax.jobs import instruct
from underrep_jax.models import runtime

SUMMARY_FILE = "instructalign_summary.json"


def mixture_name(data: ml_collections.ConfigDict,
                 architecture: str = input_pipeline.DECODER_ONLY) -> str:
  """Registers (once) and names the alignment mixture, with replay mixed in if asked.

  `data.mixture`, when set, names a registered task or mixture that replaces the one the
  objective fields choose. Replay examples are drawn with `data.seed`; decoder-only
  models read a file source's inputs and targets as one text joined by a space (xP3's
  format, as the original).
  """
  if data.get("mixture"):
    name = instruct.registered_mixture(data.mixture)
  else:
    languages = [c.strip() for c in data.languages.split(",") if c.strip()] or None
    name = tasks.instructalign.alignment_mixture(
        data.objective_set, data.corpus, data.pivot or None, languages, data.xss_negatives)
  return instruct.with_replay(data, name, architecture)


def run(config: ml_collections.ConfigDict, workdir: str) -> None:
  pathlib.Path(workdir).mkdir(parents=True, exist_ok=True)
  source = runtime.ModelSource.from_config(config.model)
  instruct.import_task_modules(config.task_modules)
  mixture = mixture_name(config.data, instruct.architecture_of(source))
  instruct.train_on_mixture(config, workdir, mixture, source, summary_file=SUMMARY_FILE)
