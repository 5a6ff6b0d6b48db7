"""X-ICL prompts in both languages, retrieval on a constructed pool, and refusals."""

import numpy as np
import pytest

from underrep_jax.data import prompts as prompt_lib
from underrep_jax.evaluation import retrieval
from underrep_jax.evaluation import xicl

POOL = ["the food was delicious and cheap", "terrible service and cold food",
        "the hotel room was clean", "I watched a football match", "cheap delicious noodles"]
SOURCE = {"negative": "negative", "positive": "positive"}
TARGET = {"negative": "awon", "positive": "alus"}


def _prompt(label_position, query_position, prompt_language="eng"):
  _, candidates, _ = xicl.label_words("align", SOURCE, TARGET)
  return xicl.build_prompt(
      xicl.instruction("sentiment", list(candidates.values()), prompt_language),
      [("great\nplace", "positive"), ("bad", "negative")], "tempatna alus pisan",
      xicl.label_alignment_line(SOURCE, TARGET, "sun", prompt_language), label_position,
      xicl.query_alignment_lines([("abdi lapar", "I am\nhungry")], "sun", prompt_language),
      query_position).splitlines()


def test_alignment_lines_name_the_language_and_quote_the_sentences():
  assert xicl.query_alignment_lines([("abdi lapar", "I am hungry")], "sun", "eng") == [
      'The Sundanese sentence "abdi lapar" means "I am hungry".']
  assert xicl.query_alignment_lines([("abdi lapar", "saya lapar")], "sun", "ind") == [
      'Kalimat bahasa Sunda "abdi lapar" artinya "saya lapar".']
  assert xicl.label_alignment_line(SOURCE, TARGET, "mak", "eng") == \
      "Labels in Makassarese: negative means awon, positive means alus."
  assert xicl.label_alignment_line({"x": "positif"}, {"x": "alus"}, "sun", "ind") == \
      "Label dalam bahasa Sunda: positif artinya alus."


def test_paper_default_puts_both_alignments_after_the_exemplars():
  assert _prompt("after", "after") == [
      "Classify the sentiment of each text as awon or alus.",
      "great place => positive",
      "bad => negative",
      'The Sundanese sentence "abdi lapar" means "I am hungry".',
      "Labels in Sundanese: negative means awon, positive means alus.",
      "tempatna alus pisan =>"]
  assert xicl.PAPER_POSITION == "after"


def test_each_alignment_goes_where_asked():
  query_line = 'The Sundanese sentence "abdi lapar" means "I am hungry".'
  label_line = "Labels in Sundanese: negative means awon, positive means alus."
  before_both = _prompt("before", "before")
  assert before_both[1:3] == [query_line, label_line] and before_both[3].endswith("positive")
  split = _prompt("before", "after")
  assert split[1] == label_line and split[4] == query_line
  split = _prompt("after", "before")
  assert split[1] == query_line and split[4] == label_line
  ind = _prompt("before", "after", "ind")
  assert ind[0] == "Klasifikasikan sentimen setiap teks sebagai awon atau alus."
  assert ind[1].startswith("Label dalam bahasa Sunda:")
  assert ind[4] == 'Kalimat bahasa Sunda "abdi lapar" artinya "I am hungry".'


def test_no_alignment_leaves_instruction_exemplars_query():
  prompt = xicl.build_prompt(
      xicl.instruction("topic", ["bisnis", "agama", "olahraga"], "ind"),
      [("teks", "agama")], "kueri")
  assert prompt.splitlines() == [
      "Klasifikasikan topik setiap teks sebagai bisnis, agama atau olahraga.",
      "teks => agama", "kueri =>"]


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


def test_alignment_source_table():
  assert xicl.alignment_source("mak") == "nusatranslation_mt"
  assert xicl.alignment_source("btk") == "nusatranslation_mt"
  assert xicl.alignment_source("sun") == "nusax_mt"
  assert xicl.alignment_source("sun", xicl.parse_map("sun=nusatranslation_mt")) == \
      "nusatranslation_mt"
  with pytest.raises(ValueError, match="unknown"):
    xicl.alignment_source("sun", {"sun": "flores"})


def test_alignment_pairs_for_a_language_nusax_mt_lacks_pair_with_indonesian():
  pairs = xicl.alignment_pairs("mak", "eng", "nusatranslation_mt", ["validation"])
  assert pairs and {(p["source_language"], p["target_language"]) for p in pairs} == \
      {("ind", "mak")}
  nusax = xicl.alignment_pairs("sun", "eng", "nusax_mt", ["train", "validation", "test"])
  assert len(nusax) == 1000 and nusax[0]["source_language"] == "eng"


def test_tfidf_returns_the_expected_neighbours():
  r = retrieval.Retriever("tfidf", POOL)
  assert r.retrieve(["the food was delicious", "delicious noodles"], 1) == [[0], [4]]
  assert r.retrieve(["football"], 1) == [[3]]
  assert r.retrieve(["cold food terrible"], 1) == [[1]]
  assert len(r.retrieve(["x"], 10)[0]) == len(POOL)  # k is capped by the pool


def test_tfidf_settings_reach_scikit_learn():
  r = retrieval.Retriever("tfidf", POOL, min_df=2, max_features=3)
  params = r.vectorizer.get_params()
  assert (params["min_df"], params["max_features"], params["ngram_range"]) == (2, 3, (1, 3))
  assert len(r.vectorizer.vocabulary_) == 3
  assert "football" not in r.vectorizer.vocabulary_  # once in the pool: under min_df
  with pytest.raises(ValueError, match="min_df=9"):
    retrieval.Retriever("tfidf", POOL, min_df=9)


def test_unique_is_word_set_jaccard():
  r = retrieval.Retriever("unique", ["a b c", "a d", "e"])
  np.testing.assert_allclose(r.similarities(["A b!"]), [[2 / 3, 1 / 3, 0.0]])


def test_combined_ranking_averages_softmaxes_over_the_pool():
  pool = ["alpha beta", "alpha gamma", "delta"]
  vectors = {"alpha beta": [0.0, 1.0], "alpha gamma": [0.6, 0.8], "delta": [1.0, 0.0],
             "alpha beta zeta": [1.0, 0.0]}
  encoder = lambda texts: np.array([vectors[t] for t in texts])
  r = retrieval.Retriever("unique+dense", pool, encoder=encoder)
  unique, dense = np.array([2 / 3, 1 / 4, 0.0]), np.array([0.0, 0.6, 1.0])
  softmax = lambda x: np.exp(x) / np.exp(x).sum()
  expected = (softmax(unique) + softmax(dense)) / 2
  np.testing.assert_allclose(r.similarities(["alpha beta zeta"])[0], expected, atol=1e-6)
  # Word overlap alone ranks 0, 1, 2; dense alone 2, 1, 0; a mean of raw scores 2, 1, 0.
  assert r.retrieve(["alpha beta zeta"], 3) == [[2, 0, 1]]


def test_dense_retrieval_uses_cosine_of_the_encoder():
  vectors = {"a": [1.0, 0.0], "b": [0.0, 1.0], "c": [0.7071, 0.7071], "q": [0.9, 0.1]}
  encoder = lambda texts: np.array([vectors[t] for t in texts])
  r = retrieval.Retriever("dense", ["a", "b", "c"], encoder=encoder)
  assert r.retrieve(["q"], 3) == [[0, 2, 1]]


def test_dense_retrieval_with_minilm_finds_the_paraphrase():
  r = retrieval.Retriever("dense", POOL)
  assert r.retrieve(["a football game on TV"], 1) == [[3]]


def test_retrieval_skips_the_query_itself_when_asked():
  r = retrieval.Retriever("tfidf", POOL)
  assert r.retrieve(["Cheap  delicious noodles"], 1) == [[4]]
  kept = r.retrieve(["Cheap  delicious noodles"], 2, skip_identical=True)[0]
  assert len(kept) == 2 and 4 not in kept
  random = retrieval.Retriever("random", POOL).retrieve(["cheap delicious noodles"], 5,
                                                         skip_identical=True)[0]
  assert sorted(random) == [0, 1, 2, 3]


def test_random_retrieval_is_seeded_and_distinct():
  a = retrieval.Retriever("random", POOL, seed=1).retrieve(["q1", "q2"], 3)
  b = retrieval.Retriever("random", POOL, seed=1).retrieve(["q1", "q2"], 3)
  assert a == b and all(len(set(x)) == 3 for x in a)


def test_refusals():
  with pytest.raises(ValueError, match="empty retrieval pool"):
    retrieval.Retriever("tfidf", [])
  with pytest.raises(ValueError, match="unknown retrieval method 'bm25'"):
    retrieval.Retriever("bm25", POOL)
  with pytest.raises(ValueError, match="random has no scores"):
    retrieval.parse_methods("random+tfidf")
  with pytest.raises(ValueError, match=r"no word for labels \['positive'\]"):
    xicl.target_label_words(["negative", "positive"], "abs", {"negative": "jele"})
  with pytest.raises(ValueError, match="not key=value"):
    xicl.parse_map("negative=awon,positive")
  with pytest.raises(ValueError, match="unknown label variant"):
    xicl.label_words("both", {}, {})
  with pytest.raises(ValueError, match="query-alignment position"):
    xicl.build_prompt("i", [], "q", query_position="middle")
  with pytest.raises(ValueError, match="label-alignment position"):
    xicl.build_prompt("i", [], "q", label_position="none")


def test_target_labels_from_the_lexicon_and_explicit_map():
  words = xicl.target_label_words(["negative", "positive"], "sun")
  assert set(words) == {"negative", "positive"} and all(words.values())
  assert xicl.target_label_words(["positive"], "abs", xicl.parse_map("positive=bae")) == \
      {"positive": "bae"}
