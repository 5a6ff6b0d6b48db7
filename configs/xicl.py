"""Cross-lingual in-context learning (X-ICL) with label and query alignment.

    python -m underrep_jax.main --config=configs/xicl.py:tiny --workdir=runs/xicl_tiny \
        --config.model.path=runs/ia_tiny
    python -m underrep_jax.main --config=configs/xicl.py:paper --workdir=runs/xicl_560m \
        --config.model.path=/ckpt/bloomz-560m

Every combination of `label_variants` x `query_alignment` is one prompt variant (its name
in predictions.jsonl and the report columns), e.g. "source", "align+after".

Retrieval (`retrieval`, `alignment_retrieval`): random | unique | tfidf | dense, or a
"+"-joined combination ranked by the mean of each method's softmax over the pool
(`evaluation/retrieval.py`). Dense retrieval encodes with `retrieval_encoder`, a
sentence-transformers directory or Hub id: sentence-transformers/stsb-xlm-r-multilingual
(the paper's default), sentence-transformers/LaBSE (its best),
sentence-transformers/paraphrase-multilingual-mpnet-base-v2; "" is the packaged
all-MiniLM-L6-v2, English-only, offline, for tests and `tiny`.

Presets:
  paper  the paper's NusaTranslation setting: test queries in btk, sun, jav, mad, mak and
         min (all six have NusaTranslation sentiment, so no stand-ins), the English NusaX
         sentiment pool from all splits (1,000 rows), dense retrieval with
         stsb-xlm-r-multilingual, k=3; labels source / target (negatif, positif, the
         paper's label map) / align; query alignment none or after the exemplars, pairs
         ranked by unique+tfidf+dense on the local-language side.
  tiny   sun and jav (16 queries each), the English NusaX train pool, TF-IDF retrieval,
         source/target/align labels, query alignment from NusaX-MT train before the
         exemplars; a minute or two on a CPU.
"""

import ml_collections

from underrep_jax import config_schema

PAPER_LANGUAGES = "btk,sun,jav,mad,mak,min"
PAPER_ENCODER = "sentence-transformers/stsb-xlm-r-multilingual"
ALL_SPLITS = "train,validation,test"


def get_config(preset: str = "tiny") -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.job = "xicl"
  config.data_dir = ""
  # model.path: an HF directory, a training workdir (its export/) or a Hub id org/name
  # (model.revision pins a branch, tag or commit); model.dtype: the compute dtype.
  config.model = config_schema.model()
  config.mesh = config_schema.mesh()  # where the parameters live (one device by default)
  config.query_task = "nusatranslation_senti"
  config.query_languages = PAPER_LANGUAGES  # "" = every language of query_task
  config.split = "test"
  config.max_examples = 0           # per language; 0 = all
  config.pool_task = "nusax_senti"  # labelled exemplar pool (X-ICL)
  config.pool_language = "eng"      # eng | ind (cross-lingual) | mono (query_task, target)
  config.pool_split = ALL_SPLITS    # comma list, concatenated
  config.retrieval = "dense"        # random | unique | tfidf | dense | a+b (combined)
  config.retrieval_encoder = PAPER_ENCODER  # dense: ST dir or Hub id; "" = all-MiniLM-L6-v2
  config.tfidf_min_df = 3           # TF-IDF over 1-3-grams: min_df and feature cap as the
  config.tfidf_max_features = 10000  # paper's indexer (0 = no cap)
  config.k = 3
  config.label_variants = "source,target,align"  # comma list of source | target | align
  # label=word,... (default: NusaX lexicon lookup); the paper's map is Indonesian's.
  config.target_labels = "negative=negatif,positive=positif"
  config.label_alignment_position = "after"  # before | after the exemplars
  config.query_alignment = "none,after"  # comma list of none | before | after
  # lang=nusax_mt|nusatranslation_mt,...; default per language: NusaX-MT where it has the
  # language, else NusaTranslation-MT (Indonesian side).
  config.alignment_sources = ""
  config.alignment_split = ALL_SPLITS
  config.alignment_retrieval = "unique+tfidf+dense"
  config.alignment_k = 3
  config.prompt_language = "eng"    # eng | ind
  config.scoring = "sum"
  config.batch_size = 8
  config.max_prompt_tokens = 1024
  config.seed = 0
  if preset == "tiny":
    config.query_languages = "sun,jav"
    config.max_examples = 16
    config.pool_split = "train"
    config.retrieval = "tfidf"
    config.retrieval_encoder = ""
    config.target_labels = ""
    config.query_alignment = "none,before"
    config.alignment_split = "train"
    config.alignment_retrieval = "tfidf"
    config.max_prompt_tokens = 512
  elif preset != "paper":
    raise ValueError(f"unknown preset {preset!r}; known: tiny, paper")
  return config
