"""InstructAlign: continual cross-lingual instruction tuning with experience replay.

    python -m underrep_jax.main --config=configs/instructalign.py:tiny --workdir=runs/ia_tiny
    python -m underrep_jax.main --config=configs/instructalign.py:bloomz-560m \
        --config.model.path=/ckpt/bloomz-560m --workdir=runs/ia_560m \
        --config.data.replay=/data/xp3_eng.jsonl --config.data.replay_examples=100000

Presets:
  tiny         a from-scratch small BLOOM with a SentencePiece vocabulary trained on the
               alignment data; minutes on a laptop CPU (the README's main job).
  bloomz-560m  the paper's setting (METHODS.md §1): full fine-tuning, AdamW lr 1e-5 with
  bloomz-1b1   linear decay and no warmup, batch 32, 50k steps, bf16 compute with remat,
               and the original's sequences: prompt and answer share one 128-token budget
               (`data.max_length`), cut together on the right, as the original's
               tokenizer(prompt + answer, max_length=128, truncation=True), so a long
               prompt shortens or drops the answer; no packing (32 examples per step);
               loss on the whole sequence (`train.loss_on=all`) under the causal mask the
               model is used with (`train.prefix_lm=False`). Replay as the original:
               `data.replay=hf:bigscience/xP3:en` (or a local copy), `replay_examples=r`.
  mt0-base     the same objectives on an encoder-decoder (mT0).
Deliberate differences from the original code (HLTCHKUST/InstructAlign,
run_t2t_finetuning.py): a target that fits keeps an EOS (BLOOMZ's tokenizer adds none,
so the original never taught the model to stop after an answer; generation here stops
at EOS); replay alternates 1:1 in every batch (the original's Trainer reshuffled the
interleaved set: 1:1 on average). As in the original, the model reads the tokens with no
start token in front and the first token of an example is context only
(`data/input_pipeline.py`: the causal-LM layout).

HF presets read `--config.model.path`: a local checkpoint directory (config.json,
safetensors, a tokenizer) or a Hub id such as bigscience/bloomz-560m, fetched into the
standard Hugging Face cache (safetensors, JSON and tokenizer files only; HF_HOME and
HF_HUB_OFFLINE are honoured; `--config.model.revision` pins a branch, tag or commit).

`--config.data.mixture=NAME` trains on any registered SeqIO task or mixture instead of the
objective fields (they are then ignored; replay still mixes in), after importing the
comma-separated modules in `--config.task_modules` that register it. configs/instruct.py
is the same job without the objective fields.

Checkpoints land in WORKDIR/checkpoints/<step>/ and the final model in WORKDIR/export/
(Hugging Face layout). Re-running with the same workdir resumes.
"""

import ml_collections

from underrep_jax import instruction_config as common


def base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.job = "instructalign"
  config.data_dir = ""  # default: $UNDERREP_DATA_DIR, else download from upstream
  config.task_modules = ""  # comma-separated modules imported first (they register tasks)
  common.add_training_sections(config)
  config.data = ml_collections.ConfigDict(dict(
      # A registered task or mixture to train on instead of the objective fields below.
      mixture="",
      objective_set="pair_xss",   # pair | pair_xss | random | random_xss | bilingual_xss | mlm | tlm | mt | xss
      corpus="flores",            # flores | nusaxmt | nusatranslation
      pivot="",                   # default: the corpus's first pivot (eng for flores)
      languages="",               # comma-separated codes; default: the seen languages
      xss_negatives="mismatch",   # mismatch (meaning) | corrupt (the original's noise pairs)
      **common.data_fields(),
  ))
  return config


def get_config(preset: str = "tiny") -> ml_collections.ConfigDict:
  config = base_config()
  common.apply_preset(config, preset)
  return config
