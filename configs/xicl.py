"""Cross-lingual in-context learning (X-ICL) with label and query alignment.

    python -m underrep_jax.main --config=configs/xicl.py:tiny --workdir=runs/xicl_tiny \
        --config.model.path=runs/ia_tiny
    python -m underrep_jax.main --config=configs/xicl.py:paper --workdir=runs/xicl_560m \
        --config.model.path=/ckpt/bloomz-560m

Every combination of `label_variants` x `query_alignment` is one prompt variant (its name
in predictions.jsonl and the report columns), e.g. "source", "align+before".

Presets:
  tiny   NusaTranslation sentiment queries in sun/jav (16 each), English NusaX sentiment
         pool, TF-IDF retrieval, source/target/align labels, query alignment from NusaX-MT
         before the exemplars; a minute or two on a CPU.
  paper  the paper's setting: all NusaTranslation sentiment test queries, English NusaX
         sentiment pool, dense retrieval (all-MiniLM-L6-v2), k=3.
"""

import ml_collections

from underrep_jax import config_schema


def get_config(preset: str = "tiny") -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.job = "xicl"
  config.data_dir = ""
  # model.path: an HF directory, a training workdir (its export/) or a Hub id org/name
  # (model.revision pins a branch, tag or commit); model.dtype: the compute dtype.
  config.model = config_schema.model()
  config.mesh = config_schema.mesh()  # where the parameters live (one device by default)
  config.query_task = "nusatranslation_senti"
  config.query_languages = ""       # default: every language of query_task
  config.split = "test"
  config.max_examples = 0           # per language; 0 = all
  config.pool_task = "nusax_senti"  # labelled exemplar pool (X-ICL)
  config.pool_language = "eng"      # eng | ind (cross-lingual) | mono (query_task, target)
  config.pool_split = "train"
  config.retrieval = "dense"        # random | tfidf | dense
  config.retrieval_encoder = ""     # dense: HF BERT dir; default all-MiniLM-L6-v2
  config.k = 3
  config.label_variants = "source"  # comma list of source | target | align
  config.target_labels = ""         # label=word,... (default: NusaX lexicon lookup)
  config.query_alignment = "none"   # comma list of none | before | after
  config.alignment_corpus = "nusax_mt"  # nusax_mt | nusatranslation_mt
  config.alignment_split = "train"
  config.alignment_k = 3
  config.prompt_language = "eng"    # eng | ind
  config.scoring = "sum"
  config.batch_size = 8
  config.max_prompt_tokens = 1024
  config.seed = 0
  if preset == "tiny":
    config.query_languages = "sun,jav"
    config.max_examples = 16
    config.retrieval = "tfidf"
    config.label_variants = "source,target,align"
    config.query_alignment = "none,before"
    config.max_prompt_tokens = 512
  elif preset != "paper":
    raise ValueError(f"unknown preset {preset!r}; known: tiny, paper")
  return config
