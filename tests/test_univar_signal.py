"""Supervised single-QA references and answer agreement, on constructed identities."""

import numpy as np

from underrep_jax.univar import data
from underrep_jax.univar import signal


def _qa(model, lang, q, answer):
  return data.QA(data.identity_name(model, lang), model, lang, f"q{q}", f"Question {q}?", answer)


def test_answers_that_name_the_identity_are_fully_separable():
  qas = [_qa(m, "eng", q, f"answer style {m}") for m in ("alpha", "beta", "gamma") for q in range(10)]
  train, test = data.split_qas(qas, 0.3, seed=0)
  assert test
  refs = signal.supervised_references(train, test)
  assert refs == {"logreg_tfidf_acc": 1.0, "answer_naive_bayes_acc": 1.0}


def test_agreement_counts_shared_questions():
  qas = [_qa("a", "eng", 0, "yes"), _qa("a", "eng", 1, "no"),
         _qa("a", "fin", 0, "yes"), _qa("a", "fin", 1, "yes"),
         _qa("b", "eng", 0, "no"), _qa("b", "eng", 2, "no")]
  got = signal.agreement(qas)
  # Pairs: a|eng-a|fin 1/2 (same model), a|eng-b|eng 0/1 (same language), a|fin-b|eng 0/1.
  np.testing.assert_allclose(got["same_item_agreement"], (0.5 + 0.0 + 0.0) / 3)
  assert got["same_model_agreement"] == 0.5
  assert got["same_language_agreement"] == 0.0
