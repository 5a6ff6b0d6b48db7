"""Place your own LLM on a UniVaR value map: ask, back-translate, embed and map.

Three stages of one job (`--config.stage`), each with its own workdir; a later stage
reads the earlier one's workdir from a config field. On an accelerator, for a real model:

    python -m underrep_jax.main --config=configs/univar_place.py:paper --workdir=runs/ask \
        --config.stage=ask --config.model.path=Qwen/Qwen2.5-7B-Instruct \
        --config.model.dtype=bfloat16 --config.ask.template=chat \
        --config.translator.path=bigscience/mt0-xl --config.translator.dtype=bfloat16
    python -m underrep_jax.main --config=configs/univar_place.py:paper --workdir=runs/bt \
        --config.stage=backtranslate --config.backtranslate.answers=runs/ask \
        --config.translator.path=bigscience/mt0-xl --config.translator.dtype=bfloat16
    python -m underrep_jax.main --config=configs/univar_place.py:paper --workdir=runs/placed \
        --config.stage=map --config.map.qas=runs/bt --config.map.univar_workdir=runs/univar_tiny

Stages:
  ask            `ask.questions` (euvalues | speechmap | a CSV with qid, question[, lang])
                 in every language of `ask.languages`; a question the set lacks in a
                 language is translated first by `translator` (from its English text), as
                 the original translated its English questions before asking. `model`
                 answers each with `ask.template` ({question}, or `chat`: the model's own
                 chat template from tokenizer_config.json). Sampling as the original
                 (top-k 50, top-p 0.95, temperature 1, up to 128 new tokens) with
                 `sampling.temperature` > 0; 0: greedy, or beam search with
                 `ask.num_beams` > 1 (the project's Generator). Writes
                 WORKDIR/answers/<name>.csv; run it again with another model.path (and
                 `name`) in the same workdir to add more LLMs.
  backtranslate  every row of `backtranslate.answers` (an ask workdir or a folder of
                 UniVaR CSVs) not in `backtranslate.target` (eng) translated by
                 `translator` (a decoder or mT0, prompted with `translate.template`): the
                 answer, and the question unless the ask stage started from an English
                 original (`backtranslate.original_questions`). Writes WORKDIR/qas/<model>.csv
                 with mt_lang = eng; backtranslate_summary.json and progress/<model>.jsonl
                 record which questions and answers were translated.
  map            the QAs in `map.qas` (a backtranslate workdir or a folder of UniVaR CSVs)
                 embedded with the trained encoder of `map.univar_workdir`, views drawn as
                 that run drew its map's (λ, views per identity, seed, max length), placed
                 on its map (`map.projection`: transform = onto the run's refitted UMAP, the
                 known identities unmoved; refit = one UMAP of known and new). Writes
                 value_map_placed.png / .csv, nearest_identities.json / .csv (the
                 `map.nearest` most similar known identities of each new one, by cosine
                 similarity of the identity embeddings), report.md and map_summary.json.

Every stage resumes: finished rows are appended to WORKDIR/progress/*.jsonl after each
chunk of `ask.chunk_size` prompts, and a re-run asks or translates only what is missing
(nothing at all: no model is loaded). CSVs and summaries are written atomically.

Presets:
  tiny   (default) 4 EUValues questions in eng and ind, 16 new tokens (answers and
         translations), sampled; for a quick look with any small model.
  paper  the original's generation: all EUValues items in the seven EUValues languages
         (eng, ces, spa, hun, ita, srp, rus: beside the 49 identities of a map trained on
         EUValues), sampling top-k 50, top-p 0.95, temperature 1, up to 128 new tokens;
         translations greedy, up to 256 new tokens.
"""

import ml_collections

from underrep_jax import config_schema


def get_config(preset: str = "tiny") -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.job = "univar_place"
  config.stage = "ask"            # ask | backtranslate | map
  config.data_dir = ""            # EUValues / SpeechMap questions; default $UNDERREP_DATA_DIR
  # The LLM to place (ask): an HF directory, a training workdir or a Hub id.
  config.model = config_schema.model()
  config.name = ""                # its name in the CSVs; default: the last part of model.path
  # The translator (ask: questions into each language; backtranslate: back to English).
  config.translator = config_schema.model()
  config.mesh = config_schema.mesh()
  config.ask = ml_collections.ConfigDict(dict(
      questions="euvalues",       # euvalues | speechmap | path to a CSV (qid, question[, lang])
      max_questions=0,            # the first N qids of the set; 0 = all
      languages="eng",            # comma-separated ISO 639-3 codes to ask in
      template="{question}",      # the prompt, with {question}; "chat": the model's template
      batch_size=8,
      max_new_tokens=128,         # the original's cap
      max_prompt_tokens=512,
      num_beams=1,                # with sampling.temperature=0: 1 greedy, >1 beam search
      chunk_size=64,              # prompts generated between progress writes
  ))
  config.sampling = ml_collections.ConfigDict(dict(
      temperature=1.0, top_k=50, top_p=0.95,  # the original's do_sample settings; 0: greedy
      seed=0,                     # each prompt's random stream: seed and its tokens only
  ))
  config.translate = ml_collections.ConfigDict(dict(
      template=("Translate the following text from {source} to {target}.\n"
                "{source}: {text}\n{target}:"),  # {source}/{target}: English language names
      batch_size=8,
      max_new_tokens=256,
      max_prompt_tokens=512,
      num_beams=1,
  ))
  config.backtranslate = ml_collections.ConfigDict(dict(
      answers="",                 # the ask workdir (or a folder of UniVaR CSVs)
      target="eng",
      original_questions=True,    # the English question the ask stage translated from
  ))
  config.map = ml_collections.ConfigDict(dict(
      univar_workdir="",          # a trained univar run (configs/univar.py)
      qas="",                     # the backtranslate workdir (or a folder of UniVaR CSVs)
      projection="transform",     # transform | refit
      nearest=5,                  # known identities listed per new identity
      views_per_identity=0,       # 0: the univar run's eval.views_per_identity
  ))
  if preset == "tiny":
    config.ask.max_questions = 4
    config.ask.languages = "eng,ind"
    config.ask.max_new_tokens = 16
    config.ask.max_prompt_tokens = 256
    config.translate.max_new_tokens = 16
    config.translate.max_prompt_tokens = 256
  elif preset == "paper":
    config.ask.languages = "eng,ces,spa,hun,ita,srp,rus"
  else:
    raise ValueError(f"unknown preset {preset!r}; known: tiny, paper")
  return config
