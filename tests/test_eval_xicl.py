"""X-ICL prompts in both languages, retrieval on a constructed pool, and refusals."""

import numpy as np
import pytest

from underrep_jax.data import prompts as prompt_lib
from underrep_jax.evaluation import retrieval
from underrep_jax.evaluation import xicl

POOL = ["the food was delicious and cheap", "terrible service and cold food",
        "the hotel room was clean", "I watched a football match", "cheap delicious noodles"]


def test_english_prompt_layout_with_both_alignments():
  source = {"negative": "negative", "positive": "positive"}
  target = {"negative": "awon", "positive": "alus"}
  shot_words, candidates, align = xicl.label_words("align", source, target)
  assert (shot_words, candidates, align) == (source, target, True)
  prompt = xicl.build_prompt(
      xicl.instruction("sentiment", list(candidates.values()), "eng"),
      [("great\nplace", shot_words["positive"]), ("bad", shot_words["negative"])],
      "tempatna alus pisan",
      xicl.label_alignment_line(source, target, "eng"),
      xicl.query_alignment_lines([("abdi lapar", "I am hungry")], "eng"), "after")
  assert prompt.splitlines() == [
      "Classify the sentiment of each text as awon or alus.",
      "Labels: negative means awon, positive means alus.",
      "great place => positive",
      "bad => negative",
      "abdi lapar means I am hungry",
      "tempatna alus pisan =>"]


def test_indonesian_prompt_with_query_alignment_before():
  prompt = xicl.build_prompt(
      xicl.instruction("topic", ["bisnis", "agama", "olahraga"], "ind"),
      [("teks", "agama")], "kueri",
      query_alignment=xicl.query_alignment_lines([("a", "b"), ("c", "d")], "ind"),
      position="before")
  assert prompt.splitlines() == [
      "Klasifikasikan topik setiap teks sebagai bisnis, agama atau olahraga.",
      "a artinya b", "c artinya d", "teks => agama", "kueri =>"]
  assert xicl.label_alignment_line({"x": "positif"}, {"x": "alus"}, "ind") == \
      "Label: positif artinya alus."


def test_zero_shot_prompts_fill_in_both_languages():
  eng, ind = (prompt_lib.classification_prompts("sentiment", "sentiment",
                                                labels=("negative", "positive"),
                                                prompt_languages=(lang,))[0]
              for lang in ("eng", "ind"))
  assert eng.fill("abdi resep", "sun") == ("What is the sentiment of this Sundanese text? "
                                           "Choose negative or positive.\nText: abdi resep\n"
                                           "Sentiment:")
  assert ind.fill("abdi resep", "sun").startswith("Apa sentimen dari teks berbahasa Sunda ini? "
                                                  "Pilih negatif atau positif.")
  assert ind.answer("positive") == " positif"


def test_tfidf_returns_the_expected_neighbours():
  r = retrieval.Retriever("tfidf", POOL)
  assert r.retrieve(["the food was delicious", "delicious noodles"], 1) == [[0], [4]]
  assert r.retrieve(["football"], 1) == [[3]]
  assert r.retrieve(["cold food terrible"], 1) == [[1]]
  assert len(r.retrieve(["x"], 10)[0]) == len(POOL)  # k is capped by the pool


def test_dense_retrieval_uses_cosine_of_the_encoder():
  vectors = {"a": [1.0, 0.0], "b": [0.0, 1.0], "c": [0.7071, 0.7071], "q": [0.9, 0.1]}
  encoder = lambda texts: np.array([vectors[t] for t in texts])
  r = retrieval.Retriever("dense", ["a", "b", "c"], encoder=encoder)
  assert r.retrieve(["q"], 3) == [[0, 2, 1]]


def test_dense_retrieval_with_minilm_finds_the_paraphrase():
  r = retrieval.Retriever("dense", POOL)
  assert r.retrieve(["a football game on TV"], 1) == [[3]]


def test_random_retrieval_is_seeded_and_distinct():
  a = retrieval.Retriever("random", POOL, seed=1).retrieve(["q1", "q2"], 3)
  b = retrieval.Retriever("random", POOL, seed=1).retrieve(["q1", "q2"], 3)
  assert a == b and all(len(set(x)) == 3 for x in a)


def test_refusals():
  with pytest.raises(ValueError, match="empty retrieval pool"):
    retrieval.Retriever("tfidf", [])
  with pytest.raises(ValueError, match="unknown retrieval method 'bm25'"):
    retrieval.Retriever("bm25", POOL)
  with pytest.raises(ValueError, match=r"no word for labels \['positive'\]"):
    xicl.target_label_words(["negative", "positive"], "abs", {"negative": "jele"})
  with pytest.raises(ValueError, match="not label=word"):
    xicl.parse_label_map("negative=awon,positive")
  with pytest.raises(ValueError, match="unknown label variant"):
    xicl.label_words("both", {}, {})
  with pytest.raises(ValueError, match="query-alignment position"):
    xicl.build_prompt("i", [], "q", position="middle")


def test_target_labels_from_the_lexicon_and_explicit_map():
  words = xicl.target_label_words(["negative", "positive"], "sun")
  assert set(words) == {"negative", "positive"} and all(words.values())
  assert xicl.target_label_words(["positive"], "abs", xicl.parse_label_map("positive=bae")) == \
      {"positive": "bae"}
