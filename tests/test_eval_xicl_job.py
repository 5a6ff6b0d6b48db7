"""The X-ICL job end to end for a language NusaX-MT lacks, and the `paper` preset."""

import importlib.util
import json
import re

from underrep_jax.data import readers
from underrep_jax.evaluation import testing
from underrep_jax.jobs import xicl as xicl_job

import launcher  # tests/launcher.py


def _config(preset: str):
  spec = importlib.util.spec_from_file_location("xicl_config",
                                                launcher.REPO / "configs" / "xicl.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(preset)


def test_query_alignment_for_makassarese_uses_nusatranslation_mt(tmp_path):
  testing.save_tiny_lm(tmp_path / "model")
  config = _config("tiny")
  config.model.path = str(tmp_path / "model")
  config.query_languages = "mak"
  config.max_examples = 3
  config.label_variants = "align"
  config.target_labels = "negative=kodi,positive=baji"
  config.query_alignment = "after"
  config.alignment_split = "validation"
  xicl_job.run(config, str(tmp_path / "run"))

  records = [json.loads(l) for l in (tmp_path / "run" / "predictions.jsonl").read_text()
             .splitlines()]
  assert len(records) == 3 and {r["prompt"] for r in records} == {"align+after"}
  indonesian = {" ".join(p["source"].split())
                for p in readers.nusatranslation_mt_pairs("ind", "mak", "validation")}
  for record in records:
    lines = record["text"].splitlines()
    aligned = [re.fullmatch(r'The Makassarese sentence "(.*)" means "(.*)"\.', l)
               for l in lines[4:7]]
    assert all(aligned) and all(m[2] in indonesian for m in aligned)  # ind side of the pair
    assert all(m[1] != lines[-1][:-3] for m in aligned)  # never the query's own sentence
    assert lines[7] == "Labels in Makassarese: negative means kodi, positive means baji."
    assert all(" => " in l for l in lines[1:4]) and lines[-1].endswith(" =>")
  metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
  assert metrics["alignment_sources"] == {"mak": "nusatranslation_mt"}
  assert "| align+after | " in (tmp_path / "run" / "report.md").read_text()


def test_paper_preset():
  config = _config("paper")
  languages = config.query_languages.split(",")
  assert languages == ["btk", "sun", "jav", "mad", "mak", "min"]
  assert set(languages) <= set(readers.available_languages("nusatranslation_senti"))
  assert config.k == 3 and config.pool_language == "eng" and config.split == "test"
  assert config.retrieval == "dense"
  assert config.retrieval_encoder == "sentence-transformers/stsb-xlm-r-multilingual"
  assert (config.tfidf_min_df, config.tfidf_max_features) == (3, 10000)
  assert config.label_variants.split(",") == ["source", "target", "align"]
  assert config.target_labels == "negative=negatif,positive=positif"
  assert config.label_alignment_position == "after" and "after" in config.query_alignment
  assert config.alignment_retrieval == "unique+tfidf+dense"
  rows = xicl_job._read_splits(readers.nusax_sentiment, "eng", config.pool_split.split(","))
  assert len(rows) == 1000 and len({r["id"] for r in rows}) == 1000
  pool, language = xicl_job._pool(config, "mak", readers.LABELS[config.query_task])
  assert language == "eng" and {r["label"] for r in pool} == {"negative", "positive"}
