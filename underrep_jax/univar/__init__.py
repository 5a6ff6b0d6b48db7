"""UniVaR: contrastive multi-view value embeddings of (LLM, language) identities.

One module per concern, imported explicitly (the value map pulls in umap-learn and
matplotlib, which are slow to import):
- `data`: QA readers (original UniVaR CSVs, EUValues, SpeechMap) and per-identity splits;
- `views`: multi-view rendering and the seeded, resumable batch sampler;
- `loss`: InfoNCE over the global batch (JAX);
- `probes`: k-NN, linear and TF-IDF identity probes of single QAs and of views of m
  QAs, `univar_eval.json`;
- `value_map`: UMAP map, similarity heatmap, coordinates CSV and `report.md`.
"""
