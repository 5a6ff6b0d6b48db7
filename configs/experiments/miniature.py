"""InstructAlign's claims at laptop scale: a small decoder trained from scratch stands in
for the instruction-tuned LLM.

    python -m underrep_jax.main --config=configs/experiments/miniature.py --workdir=runs/miniature
    python -m underrep_jax.main --config=configs/experiments/miniature.py:micro \
        --workdir=runs/miniature_micro --config.list_only=True

Per seed s (train.seed and data.seed = s):
  base_s<s>          `instruct` from scratch on `miniature_base` (tasks/miniature.py):
                     language modelling on English and Indonesian text plus instruction
                     data in both languages (NusaX sentiment, SIB-200 topics in the
                     evaluation's six prompts, English<->Indonesian translation); train
                     splits only. Its SentencePiece vocabulary is trained on that data.
  align_s<s>         `instructalign` from the base: InstructAlign's objective set
                     (`pair_xss`) on NusaX-MT (pivot ind) and FLORES (pivot eng) train
                     pairs with the seen languages, r = 0;
  align_replay_s<s>  the same, alternating 1:1 with r examples of the base's instruction
                     data (`miniature_instruct`) replayed;
  control_s<s>       `instruct` from the base: the base's own training continued for the
                     same number of steps;
  eval_<v>_s<s>      `evaluate` of each of the four, zero-shot: NusaX sentiment (12
                     languages), NusaTranslation sentiment and SIB-200 topics, test
                     splits, the six prompts, `max_examples` per language;
  compare            one report (WORKDIR/report.md, report.json, report.png): per task,
                     mean weighted F1 of the pretrained (eng, ind), seen and unseen groups
                     per variant, mean ± std [min, max] over seeds, with the majority and
                     random baselines, and the claims, each holding or not with numbers:
                     alignment raises seen languages above base and control; without
                     replay eng/ind fall below base, with replay they stay closer; unseen
                     languages gain less than seen.

Presets:
  default  3 seeds; base 1,000 steps, each variant 200 (batch 16 rows of 192 packed
           tokens), the first 30 test examples per language and task. Measured stages
           (2-core AMD EPYC, shared): base 1,000 steps about 7 minutes, each variant
           about 2, each evaluation about 1.5; about 19 minutes a seed, just under an
           hour for three. One seed's base at 600 steps and LM : instruction 1 : 1
           stayed at the majority baseline everywhere (so no claim could be tested);
           hence 1,000 steps at 1 : 4 (tasks/miniature.py).
  micro    1 seed, a few steps, the `mt` objective alone, NusaX and NusaTranslation
           sentiment with 3 test examples on eng, sun and mad: the test suite's
           structure and resumption check (tests/test_experiments.py); about 90 s.
"""

import pathlib

from underrep_jax.experiments import configs

CONFIGS = pathlib.Path(__file__).resolve().parents[1]
TASK_MODULE = "tasks.miniature"
# SIB-200 as tasks/miniature.py registers it: its test rows interleaved by label, so that
# `max_examples` takes a stratified sample (the files are sorted by topic).
EVAL_TASKS = "nusax_senti,nusatranslation_senti,miniature_sib200_topic"
VARIANTS = ("base", "align", "align_replay", "control")

PRESETS = {
    "default": dict(seeds=(0, 1, 2), base_steps=1000, steps=200, batch_size=16,
                    replay_examples=2000, max_examples=30, languages="",
                    hidden_size=128, num_layers=2, num_heads=4, vocab_size=2000,
                    checkpoint_every=200, objective_set="pair_xss",
                    tasks=EVAL_TASKS),
    # micro: one objective (mt) keeps the alignment mixture's set-up short
    "micro": dict(seeds=(0,), base_steps=4, steps=2, batch_size=4, replay_examples=16,
                  max_examples=3, languages="eng,sun,mad",
                  hidden_size=32, num_layers=1, num_heads=2, vocab_size=400,
                  checkpoint_every=2, objective_set="mt",
                  tasks="nusax_senti,nusatranslation_senti"),
}


def _training(job_file: str, p: dict, seed: int, steps: int, **fields):
  """A training stage's config: the job's `tiny` preset at this preset's sizes."""
  config = configs.load_job_config(CONFIGS / job_file, "tiny")
  return configs.with_fields(config, **{
      "task_modules": TASK_MODULE, "train.steps": steps, "train.seed": seed,
      "data.seed": seed, "train.batch_size": p["batch_size"],
      "train.checkpoint_every": p["checkpoint_every"], "train.log_every": 10,
      "data.inputs_length": 128, "data.targets_length": 64,
      "model.scratch.hidden_size": p["hidden_size"],
      "model.scratch.num_layers": p["num_layers"],
      "model.scratch.num_heads": p["num_heads"], "data.vocab_size": p["vocab_size"],
      **fields})


def _continued(job_file: str, p: dict, seed: int, base: str, **fields):
  """A stage that starts from the base model (its export and its tokenizer)."""
  return _training(job_file, p, seed, p["steps"], **{
      "model.path": configs.ref(base), "data.vocab": "model",
      "optimizer.learning_rate": 1e-3, "optimizer.warmup_steps": 0, **fields})


def _evaluation(p: dict, model_stage: str):
  return configs.load_job_config(CONFIGS / "evaluate.py", "tiny", **{
      "model.path": configs.ref(model_stage), "tasks": p["tasks"],
      "task_modules": TASK_MODULE,
      "languages": p["languages"], "max_examples": p["max_examples"], "mt_tasks": "",
      "split": "test", "batch_size": 32})


def get_config(preset: str = "default"):
  if preset not in PRESETS:
    raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
  p = PRESETS[preset]
  stages, runs = [], []
  align_mixture = f"miniature_align_{p['objective_set']}"
  for seed in p["seeds"]:
    base = f"base_s{seed}"
    models = {
        "base": configs.stage(
            _training("instruct.py", p, seed, p["base_steps"],
                      **{"data.mixture": "miniature_base"}),
            description="from scratch: eng/ind LM text + eng/ind instruction data"),
        "align": configs.stage(
            _continued("instructalign.py", p, seed, base,
                       **{"data.mixture": align_mixture}),
            description=f"InstructAlign {p['objective_set']} on NusaX-MT + FLORES train "
                        "pairs, r=0"),
        "align_replay": configs.stage(
            _continued("instructalign.py", p, seed, base,
                       **{"data.mixture": align_mixture,
                          "data.replay": "miniature_instruct",
                          "data.replay_examples": p["replay_examples"]}),
            description=f"the same with r={p['replay_examples']} of the base's "
                        "instruction data replayed 1:1"),
        "control": configs.stage(
            _continued("instruct.py", p, seed, base,
                       **{"data.mixture": "miniature_base"}),
            description="the base's own training continued for the same steps"),
    }
    for variant in VARIANTS:
      name = f"{variant}_s{seed}"
      stages.append((name, models[variant]))
    for variant in VARIANTS:
      name = f"eval_{variant}_s{seed}"
      stages.append((name, configs.stage(_evaluation(p, f"{variant}_s{seed}"),
                                         description=f"zero-shot {p['tasks']}")))
      runs.append((variant, seed, name))
  stages.append(("compare", configs.stage(configs.report_config(
      runs, title=f"Miniature InstructAlign ({preset})", baseline="base",
      control="control", claims="miniature", tasks=p["tasks"]),
      description="report.md, report.json, report.png in the experiment's workdir")))
  return configs.experiment("miniature", f"configs/experiments/miniature.py:{preset}",
                            stages)
