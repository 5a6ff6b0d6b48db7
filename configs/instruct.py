"""Instruction tuning on any registered SeqIO task or mixture (yours or the project's).

    python -m underrep_jax.main --config=configs/instruct.py:tiny --workdir=runs/my_run \
        --config.task_modules=my_tasks --config.data.mixture=my_mix
    python -m underrep_jax.main --config=configs/instruct.py:bloomz-560m \
        --config.data.mixture=instructalign_pair_xss_flores_eng --workdir=runs/bloomz

`task_modules` (comma-separated, importable from PYTHONPATH) are imported before
`data.mixture` is looked up, as T5X's MIXTURE_OR_TASK_MODULE; the project's own tasks
(`import tasks`) are always registered. Tasks need `inputs` and `targets` features
(`underrep_jax.data.seqio_pipeline.OUTPUT_FEATURES`). The presets, training loop,
checkpoints, resume and export are InstructAlign's (configs/instructalign.py, which is
this job plus its choice of mixture): `tiny` builds a small BLOOM from scratch with a
SentencePiece vocabulary trained on the mixture; the HF presets read `model.path`.

Writes WORKDIR/checkpoints/<step>/, WORKDIR/metrics.jsonl, WORKDIR/instruct_summary.json
and WORKDIR/export/ (Hugging Face layout). Re-running with the same workdir resumes.
"""

import ml_collections

from underrep_jax import instruction_config as common


def get_config(preset: str = "tiny") -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.job = "instruct"
  config.data_dir = ""  # default: $UNDERREP_DATA_DIR, else download from upstream
  config.task_modules = ""  # comma-separated modules imported first (they register tasks)
  common.add_training_sections(config)
  config.data = ml_collections.ConfigDict(dict(
      mixture="",  # required: a registered SeqIO task or mixture name
      **common.data_fields(),
  ))
  common.apply_preset(config, preset)
  return config
