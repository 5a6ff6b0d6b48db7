"""Zero-shot evaluation of registered SeqIO tasks: rank classification, and generation.

    python -m underrep_jax.main --config=configs/evaluate.py:tiny --workdir=runs/eval_tiny \
        --config.model.path=runs/ia_tiny
    python -m underrep_jax.main --config=configs/evaluate.py:full --workdir=runs/eval_560m \
        --config.model.path=/ckpt/bloomz-560m

`--config.model.path` is an HF directory (config.json, safetensors, tokenizer.json), the
workdir of a training run (its export/ is used) or a Hub id. `--config.tasks` and
`--config.mt_tasks` name registered SeqIO tasks or mixtures (`python -m underrep_jax.show
--list`); a user's own are registered by the modules in `--config.task_modules` (README:
"Evaluating your own task"). Classification tasks (which declare labels and prompts) are
ranked by log-likelihood; other tasks are generated and scored with their metric_fns.
`--config.mesh.shape` places the model (e.g. "(1,-1,1)": FSDP over every device); batches
are split over the data-parallel devices and hosts. Outputs in the workdir (process 0):
predictions.jsonl, translations.jsonl, metrics.json, report.md and one PNG per task.

Presets:
  tiny  NusaX sentiment on ind/sun/jav (24 test examples each, 6 prompts) and NusaX-MT
        ind<->sun (8 sentences, greedy); a minute or two on a CPU.
  full  every classification dataset and language, all test examples; MT both directions
        between Indonesian and every NusaX-MT / NusaTranslation-MT language.
  paper the settings of the InstructAlign headline numbers (METHODS.md §1-2): `full`, with
        the anchor's scoring, the mean log-probability of the whole sequence (prompt and
        label, `whole`), prompts of up to 1,024 tokens cut from the left (the label stays),
        and all six prompts; report.md and metrics.json give the mean over the three
        English prompts (`mean_eng`) beside the mean over all six.

Every run also reports, per task and language, the mean over each prompt language's
prompts (`mean_<lang>`) next to the mean over all prompts.
"""

import ml_collections

from underrep_jax import config_schema


def get_config(preset: str = "tiny") -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.job = "evaluate"
  config.data_dir = ""
  # model.path: an HF directory, a training workdir (its export/) or a Hub id org/name
  # (model.revision pins a branch, tag or commit); model.dtype: the compute dtype.
  config.model = config_schema.model()
  config.mesh = config_schema.mesh()  # where the parameters live (one device by default)
  config.task_modules = ""       # comma-separated modules imported first (they register tasks)
  # Task or mixture names; a mixture reports its tasks together (one row per language).
  config.tasks = ("nusax_senti,nusatranslation_senti,nusaparagraph_emot,nusaparagraph_topic,"
                  "sib200_topic")
  config.languages = ""          # classification tasks of these languages; default: all
  config.split = "test"
  config.max_examples = 0        # per task and language; 0 = all
  config.prompt_languages = "eng,ind"  # the tasks' prompt variants in these languages
  config.scoring = "sum"         # sum (default) | mean | whole (see evaluation/scoring.py)
  config.batch_size = 16
  config.max_prompt_tokens = 512
  config.mt_tasks = "nusax_mt,nusatranslation_mt"  # generation tasks (any names work)
  config.mt_languages = ""       # translation directions to/from these; default: all
  config.mt_pivot = "ind"        # directions pivot->language and language->pivot only
  config.mt_max_examples = 0     # per generation task; 0 = all
  config.max_new_tokens = 64
  config.num_beams = 1           # 1: greedy
  config.seed = 0
  if preset == "tiny":
    config.tasks = "nusax_senti"
    config.languages = "ind,sun,jav"
    config.max_examples = 24
    config.max_prompt_tokens = 256
    config.mt_tasks = "nusax_mt"
    config.mt_languages = "sun"
    config.mt_max_examples = 8
    config.max_new_tokens = 16
  elif preset == "paper":
    config.scoring = "whole"
    config.max_prompt_tokens = 1024
    config.prompt_languages = "eng,ind"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; known: tiny, full, paper")
  return config
