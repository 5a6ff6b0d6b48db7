"""The InstructAlign paper's grid on BLOOMZ-560M (METHODS.md section 1), as stages.

    python -m underrep_jax.main --config=configs/experiments/instructalign_paper.py \
        --workdir=runs/ia_paper --config.list_only=True
    python -m underrep_jax.main --config=configs/experiments/instructalign_paper.py \
        --workdir=runs/ia_paper --config.only=pair_xss_r100k     # one stage, e.g. per cluster job
    python -m underrep_jax.plan --config=configs/experiments/instructalign_paper.py \
        --config.only=pair_xss_r100k --target=v5e-8 --config.stages.pair_xss_r100k.config.mesh.shape='(1,-1,1)'

Stages (everything runs on accelerators; on a CPU host, list and plan them):
  eval_base_<task>          BLOOMZ-560M itself, zero-shot (`evaluate:paper`: whole-sequence
                            scoring, six prompts), on NusaX and NusaTranslation sentiment;
  <set>_r<r>                `instructalign:bloomz-560m` (the paper's training: AdamW 1e-5,
                            batch 32, 50k steps, 128 tokens) with objective set <set> in
                            pair, pair_xss, random, random_xss, bilingual_xss on FLORES
                            (the SIB-200 train split, pivot eng), with r in {0, 1k, 10k,
                            100k} examples of xP3 English replayed 1:1
                            (`hf:bigscience/xP3:en`; a local copy: override data.replay);
  eval_<set>_r<r>_<task>    each of those evaluated as the base;
  compare                   WORKDIR/report.md: per task, mean weighted F1 over all languages
                            and per group, with the published numbers beside ours
                            (underrep_jax/experiments/published.py).
"""

import pathlib

from underrep_jax.experiments import configs

CONFIGS = pathlib.Path(__file__).resolve().parents[1]
MODEL = "bigscience/bloomz-560m"
OBJECTIVE_SETS = ("pair", "pair_xss", "random", "random_xss", "bilingual_xss")
REPLAY = {"0": 0, "1k": 1_000, "10k": 10_000, "100k": 100_000}
REPLAY_SOURCE = "hf:bigscience/xP3:en"
TASKS = {"nusax": "nusax_senti", "nusatranslation": "nusatranslation_senti"}


def _evaluation(model_path: str, task: str):
  return configs.load_job_config(CONFIGS / "evaluate.py", "paper", **{
      "model.path": model_path, "tasks": task, "mt_tasks": "", "split": "test"})


def get_config(preset: str = "bloomz-560m"):
  if preset != "bloomz-560m":
    raise ValueError(f"unknown preset {preset!r}; known: bloomz-560m")
  stages, runs = [], []
  for short, task in TASKS.items():
    name = f"eval_base_{short}"
    stages.append((name, configs.stage(_evaluation(MODEL, task),
                                       description=f"{MODEL} zero-shot on {task}")))
    runs.append(("base", 0, name))
  for objective_set in OBJECTIVE_SETS:
    for tag, r in REPLAY.items():
      variant = f"{objective_set}_r{tag}"
      train = configs.load_job_config(CONFIGS / "instructalign.py", "bloomz-560m", **{
          "model.path": MODEL, "data.objective_set": objective_set, "data.corpus": "flores",
          "data.replay": REPLAY_SOURCE if r else "", "data.replay_examples": r})
      stages.append((variant, configs.stage(
          train, description=f"InstructAlign {objective_set}, r={r} xP3-English replay")))
      for short, task in TASKS.items():
        name = f"eval_{variant}_{short}"
        stages.append((name, configs.stage(_evaluation(configs.ref(variant), task),
                                           description=f"{variant} zero-shot on {task}")))
        runs.append((variant, 0, name))
  stages.append(("compare", configs.stage(configs.report_config(
      runs, title="InstructAlign on BLOOMZ-560M (the paper's grid)", baseline="base",
      published="instructalign_bloomz560m", tasks=",".join(TASKS.values())),
      description="report.md, report.json, report.png beside the published numbers")))
  return configs.experiment("instructalign_paper",
                            "configs/experiments/instructalign_paper.py", stages)
