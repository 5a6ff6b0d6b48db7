"""How much a single QA says about its identity: supervised references for the probes.

UniVaR's probes classify single test QAs. Before reading their numbers, it helps to
know how separable the identities are at all from one QA. This module measures it on
the same train/test split as the job:
- `logreg_tfidf_acc`: scikit-learn LogisticRegression (C=3) on TF-IDF 1-2-grams of the
  rendered QA, trained with the identity labels (what a supervised classifier reaches);
- `answer_naive_bayes_acc`: the answer text as one category, class prior times the
  smoothed per-identity frequency of that answer;
- `same_item_agreement`: for pairs of identities, the share of shared questions on which
  they gave the same answer (and the same within one model, and within one language).

    python -m underrep_jax.univar.signal [--source=euvalues] [--split_unit=question]
"""

import collections
from collections.abc import Sequence
import itertools
import json

from absl import app
from absl import flags
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from underrep_jax.univar import data as data_lib
from underrep_jax.univar import views as views_lib


def agreement(qas: Sequence[data_lib.QA]) -> dict[str, float]:
  """Mean share of shared questions two identities answered alike: all pairs, same model,
  same language (NaN where no such pair shares a question)."""
  answers = {identity: {qa.qid: qa.answer for qa in group}
             for identity, group in data_lib.group_by_identity(qas).items()}
  pools = {"same_item_agreement": [], "same_model_agreement": [],
           "same_language_agreement": []}
  for a, b in itertools.combinations(answers, 2):
    shared = answers[a].keys() & answers[b].keys()
    if not shared:
      continue
    value = np.mean([answers[a][q] == answers[b][q] for q in shared])
    (model_a, lang_a), (model_b, lang_b) = data_lib.split_identity(a), data_lib.split_identity(b)
    pools["same_item_agreement"].append(value)
    if model_a == model_b:
      pools["same_model_agreement"].append(value)
    if lang_a == lang_b:
      pools["same_language_agreement"].append(value)
  return {k: float(np.mean(v)) if v else float("nan") for k, v in pools.items()}


def supervised_references(train: Sequence[data_lib.QA], test: Sequence[data_lib.QA]
                          ) -> dict[str, float]:
  """Test accuracy of two supervised single-QA classifiers trained on `train`."""
  y_train = np.array([qa.identity for qa in train])
  y_test = np.array([qa.identity for qa in test])
  vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
  x_train = vectorizer.fit_transform([views_lib.render_qa(qa) for qa in train])
  x_test = vectorizer.transform([views_lib.render_qa(qa) for qa in test])
  logreg = LogisticRegression(C=3.0, max_iter=3000).fit(x_train, y_train)

  prior = collections.Counter(y_train.tolist())
  counts = collections.defaultdict(collections.Counter)
  for qa in train:
    counts[qa.identity][qa.answer] += 1
  num_answers = len({qa.answer for qa in train} | {qa.answer for qa in test})
  identities = sorted(prior)

  def naive_bayes(qa):
    return max(identities, key=lambda i: np.log(prior[i]) + np.log(
        (counts[i][qa.answer] + 0.5) / (prior[i] + 0.5 * num_answers)))

  return {"logreg_tfidf_acc": float(np.mean(logreg.predict(x_test) == y_test)),
          "answer_naive_bayes_acc": float(np.mean([naive_bayes(qa) for qa in test] == y_test))}


_SOURCE = flags.DEFINE_enum("source", "euvalues", ["euvalues", "speechmap"], "QA source.")
_SPLIT_UNIT = flags.DEFINE_enum("split_unit", "question", list(data_lib.SPLIT_UNITS),
                                "Train/test split, as the job's data.split_unit.")


def main(argv):
  del argv
  qas = data_lib.read_euvalues() if _SOURCE.value == "euvalues" else data_lib.read_speechmap()
  train, test = data_lib.split_qas(qas, 0.2, 0, unit=_SPLIT_UNIT.value)
  result = {"identities": len({qa.identity for qa in qas}), "train_qas": len(train),
            "test_qas": len(test), **supervised_references(train, test), **agreement(qas)}
  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  app.run(main)
