"""Published numbers the experiment reports put beside ours: written once, here.

InstructAlign (Cahyawijaya et al., SEALP @ AACL 2023, arXiv 2305.13627), as
/work/shared/METHODS.md section 1 gives them: zero-shot mean weighted F1 over languages.

Each row names the variant of our grid it stands beside (`variant`, or "" where the
grid has none). The paper's "XSS" and "TLM" rows name the objective they add; we read
"+ XSS" as `bilingual_xss` (TLM + XSS, the set that ends in XSS with the bilingual
objective) and "+ TLM" as the single objective `tlm`, which the paper grid of
configs/experiments/instructalign_paper.py does not run. That reading is ours.
"""

INSTRUCTALIGN_BLOOMZ_560M = {
    "source": "InstructAlign (arXiv 2305.13627), METHODS.md section 1",
    "metric": "weighted_f1",
    "rows": [
        # task, label as published, our variant ("" = not in our grid), value
        ("nusax_senti", "BLOOMZ-560M", "base", 0.375),
        ("nusax_senti", "Majority baseline", "majority", 0.212),
        ("nusax_senti", "Random baseline", "random", 0.334),
        ("nusax_senti", "560M + XSS, r=100k", "bilingual_xss_r100k", 0.468),
        ("nusax_senti", "560M + TLM, r=0 (forgetting)", "", 0.358),
        ("nusax_senti", "BLOOMZ-1B1", "", 0.430),
        ("nusax_senti", "BLOOMZ-3B", "", 0.466),
        ("nusax_senti", "1B1 + TLM, r=100k", "", 0.535),
        ("nusatranslation_senti", "BLOOMZ-560M", "base", 0.430),
        ("nusatranslation_senti", "560M + XSS, r=100k", "bilingual_xss_r100k", 0.665),
    ],
}

TABLES = {"instructalign_bloomz560m": INSTRUCTALIGN_BLOOMZ_560M}


def table(name: str) -> dict:
  if name not in TABLES:
    raise ValueError(f"unknown published table {name!r}; known: {', '.join(TABLES)}")
  return TABLES[name]
