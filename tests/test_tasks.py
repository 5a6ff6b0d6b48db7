"""The SeqIO registry on the real data: every task, prompts, directions, seeds, converters."""

import collections

import numpy as np
import pytest
import seqio

import tasks
from underrep_jax.data import languages
from underrep_jax.data import readers
from underrep_jax.data import vocabularies

BYTES = seqio.ByteVocabulary()


def _first(name: str, split: str = "validation", n: int = 1, seed: int = 0, shuffle=False,
           **kwargs):
  ds = seqio.get_mixture_or_task(name).get_dataset(
      sequence_length=None, split=split, shuffle=shuffle, seed=seed, **kwargs)
  return list(ds.take(n).as_numpy_iterator())


def _text(ex, key: str) -> str:
  return BYTES.decode([int(i) for i in ex[key]])


def test_registry_covers_every_dataset():
  task_names = set(seqio.TaskRegistry.names())
  mixture_names = set(seqio.MixtureRegistry.names())
  assert len(task_names) + len(mixture_names) >= 100
  for prefix in ("nusax_senti_", "nusatranslation_senti_", "nusaparagraph_emot_",
                 "nusaparagraph_topic_", "sib200_topic_", "nusax_mt_", "nusatranslation_mt_",
                 "ia_mlm_flores_", "ia_tlm_nusaxmt_", "ia_mt_nusatranslation_", "ia_xss_"):
    assert any(n.startswith(prefix) for n in task_names), prefix
  for name in ("nusax_senti_jav", "nusatranslation_senti_sun", "nusaparagraph_topic_min",
               "sib200_topic_bjn", "nusax_mt_ind_jav", "nusax_mt_jav_ind"):
    assert name in task_names
  for objective_set in ("pair", "pair_xss", "random", "random_xss", "bilingual_xss", "mlm",
                        "tlm", "mt", "xss"):
    for corpus in ("flores_eng", "nusaxmt_ind", "nusatranslation_ind"):
      assert f"instructalign_{objective_set}_{corpus}" in mixture_names


def test_every_task_yields_examples_from_the_real_data():
  for name in sorted(seqio.TaskRegistry.names()):
    if name.startswith(("replay_", "ia_xsscorrupt", "miniature_")) or "_seed" in name:
      continue  # made by other tests (the miniature's: tests/test_experiments_data.py)
    (ex,) = _first(name)
    assert len(ex["targets"]) > 1 and ex["targets"][-1] == BYTES.eos_id, name
    assert len(ex["inputs"]) > 10, name


@pytest.mark.parametrize("task,lang", [("nusax_senti", "jav"), ("nusatranslation_senti", "sun"),
                                       ("nusaparagraph_emot", "bug"), ("sib200_topic", "bjn"),
                                       ("nusaparagraph_topic", "min")])
def test_classification_prompts_name_the_language_and_keep_the_label(task, lang):
  rows = {"nusax_senti": readers.nusax_sentiment, "nusatranslation_senti":
          readers.nusatranslation_sentiment, "sib200_topic": readers.sib200_topic,
          "nusaparagraph_emot": lambda l, s: readers.nusaparagraph("emot", l, s),
          "nusaparagraph_topic": lambda l, s: readers.nusaparagraph("topic", l, s)}[task](
              lang, "validation")
  examples = _first(f"{task}_{lang}", n=5)
  for ex, row in zip(examples, rows):
    inputs = _text(ex, "inputs")
    assert languages.english_name(lang) in inputs
    assert row["text"] in inputs
    assert ex["label"].decode() == row["label"]
    assert ex["language"].decode() == lang
    assert _text(ex, "targets").strip() in inputs  # the answer is one of the listed options


@pytest.mark.parametrize("source,target", [("ind", "jav"), ("jav", "ind"), ("eng", "sun")])
def test_nusax_mt_directions(source, target):
  rows = readers.nusax_mt("validation")
  for ex, row in zip(_first(f"nusax_mt_{source}_{target}", n=3), rows):
    assert row[source] in _text(ex, "inputs")
    assert _text(ex, "targets").strip() == row[target].strip()
    inputs = _text(ex, "inputs")
    assert inputs.index(languages.english_name(source)) < inputs.index(
        languages.english_name(target))


def test_nusatranslation_mt_directions():
  rows = readers.nusatranslation_mt_pairs("ind", "sun", "validation")
  for ex, row in zip(_first("nusatranslation_mt_sun_ind", n=3), rows):
    assert row["target"] in _text(ex, "inputs")  # Sundanese text is the source here
    assert _text(ex, "targets").strip() == row["source"].strip()


@pytest.mark.parametrize("objective", ["mlm", "tlm", "mt", "xss"])
def test_alignment_tasks_use_both_languages_by_name(objective):
  examples = _first(f"ia_{objective}_flores_eng_bug", split="train", n=40, shuffle=True)
  names = collections.Counter()
  for ex in examples:
    inputs = _text(ex, "inputs")
    assert ex["objective"].decode() == objective
    assert "{" not in inputs
    for lang in ("English", "Buginese"):
      names[lang] += lang in inputs
  assert names["English"] > 0 and names["Buginese"] > 0
  if objective != "mlm":
    assert names["English"] == names["Buginese"] == len(examples)


def test_alignment_noise_is_seeded_and_new_each_epoch():
  name = "ia_mlm_nusaxmt_ind_sun"
  size = 2 * len(readers.nusax_mt("validation"))  # both directions
  first = [_text(ex, "inputs") for ex in _first(name, n=2 * size, seed=3, num_epochs=2)]
  again = [_text(ex, "inputs") for ex in _first(name, n=2 * size, seed=3, num_epochs=2)]
  other = [_text(ex, "inputs") for ex in _first(name, n=size, seed=4, num_epochs=1)]
  assert first == again
  assert first[:size] != first[size:]
  assert sum(a != b for a, b in zip(first[:size], first[size:])) > size // 2
  assert first[:size] != other


def test_xss_labels_are_balanced_and_negatives_configurable():
  for negatives in ("mismatch", "corrupt"):
    name = tasks.instructalign.alignment_task("xss", "flores", "eng", "sun", negatives)
    answers = collections.Counter(_text(ex, "targets").strip()
                                  for ex in _first(name, split="train", n=400))
    assert set(answers) == {"yes", "no"}
    assert 140 < answers["yes"] < 260, answers
  assert name == "ia_xsscorrupt_flores_eng_sun"


def test_mixture_draws_objectives_uniformly():
  name = "instructalign_random_xss_flores_eng"
  ds = seqio.get_mixture_or_task(name).get_dataset(
      sequence_length=None, split="train", shuffle=True, seed=0, num_epochs=None)
  mixture = seqio.get_mixture_or_task(name)
  rates = {t.name: mixture.get_rate(t) for t in mixture.tasks}
  assert len(set(rates.values())) == 1 and len(rates) == 4 * 8
  counts = collections.Counter()
  for ex in ds.take(800).as_numpy_iterator():
    counts[_text(ex, "inputs")[:0] or "n"] += 1
  assert counts["n"] == 800


def test_custom_mixture_with_user_languages_and_replay(tmp_path):
  name = tasks.instructalign.alignment_mixture("pair", "nusaxmt", "ind", ["sun", "mad"])
  assert name == "instructalign_pair_nusaxmt_ind_sun_mad"
  assert {t.name for t in seqio.get_mixture_or_task(name).tasks} == {
      "ia_mt_nusaxmt_ind_sun", "ia_tlm_nusaxmt_ind_sun", "ia_mt_nusaxmt_ind_mad",
      "ia_tlm_nusaxmt_ind_mad"}
  with pytest.raises(ValueError, match="objective set"):
    tasks.instructalign.alignment_mixture("nope", "flores")
  with pytest.raises(ValueError, match="no language"):
    tasks.instructalign.alignment_mixture("pair", "flores", "eng", ["mad"])


def _replay_file(tmp_path, n=50):
  path = tmp_path / "xp3_sample.jsonl"
  with path.open("w") as f:
    for i in range(n):
      f.write(f'{{"inputs": "replay question {i}?", "targets": "answer {i}"}}\n')
  return path


def test_replay_by_count_interleaves_one_to_one(tmp_path):
  path = _replay_file(tmp_path)
  name = tasks.replay.with_replay("instructalign_mt_flores_eng", str(path), num_examples=10)
  ds = seqio.get_mixture_or_task(name).get_dataset(
      sequence_length=None, split="train", shuffle=True, seed=1, num_epochs=None)
  replayed = []
  for i, ex in enumerate(ds.take(600).as_numpy_iterator()):
    text = _text(ex, "inputs")
    assert text.startswith("replay question") == (i % 2 == 0)  # strict turns, replay first
    if i % 2 == 0:
      replayed.append(int(text.split()[-1].rstrip("?")))
  # r examples of a seeded shuffle (seed 0), cycled (tests/test_replay.py has the rules)
  assert set(replayed) == {int(i) for i in np.random.default_rng(0).permutation(50)[:10]}


def test_replay_by_rate_and_from_a_task(tmp_path):
  name = tasks.replay.with_replay("instructalign_mt_flores_eng", "nusax_senti_eng", rate=0.2)
  ds = seqio.get_mixture_or_task(name).get_dataset(
      sequence_length=None, split="train", shuffle=True, seed=2, num_epochs=None)
  n = sum("sentiment" in _text(ex, "inputs") for ex in ds.take(1000).as_numpy_iterator())
  assert abs(n - 200) < 5 * np.sqrt(1000 * 0.16)
  assert tasks.replay.with_replay("instructalign_mt_flores_eng", "nusax_senti_eng",
                                  num_examples=0) == "instructalign_mt_flores_eng"
  # r examples of a registered task: its rows shuffled with the seed, the first r kept
  name = tasks.replay.with_replay("instructalign_mt_flores_eng", "nusax_senti_eng",
                                  num_examples=4, seed=5)
  ds = seqio.get_mixture_or_task(name).get_dataset(
      sequence_length=None, split="train", shuffle=True, seed=2, num_epochs=None)
  replayed = {_text(ex, "inputs") for ex in list(ds.take(40).as_numpy_iterator())[0::2]}
  assert len(replayed) == 4 and all("sentiment" in t for t in replayed)


def test_replay_jsonl_errors_name_file_line_and_field(tmp_path):
  from underrep_jax.data.errors import DataError
  path = tmp_path / "bad.jsonl"
  path.write_text('{"inputs": "a", "targets": "b"}\n{"inputs": "", "targets": "b"}\n')
  with pytest.raises(DataError, match=r"bad\.jsonl, line 2, field 'inputs'"):
    tasks.replay.jsonl_task(path)
    _first(tasks.replay.jsonl_task(path), split="train")
  path.write_text('{"inputs": "a", "targets": "b"}\nnot json\n')
  with pytest.raises(DataError, match=r"line 2: not valid JSON"):
    _first(tasks.replay.jsonl_task(path), split="train")


CONVERTERS = {
    "decoder_packed": (seqio.DecoderFeatureConverter(pack=True), "decoder_target_tokens"),
    "decoder_unpacked": (seqio.DecoderFeatureConverter(pack=False), "decoder_target_tokens"),
    "encdec_packed": (seqio.EncDecFeatureConverter(pack=True), "encoder_input_tokens"),
    "encdec_unpacked": (seqio.EncDecFeatureConverter(pack=False), "encoder_input_tokens"),
}


@pytest.fixture(scope="module")
def sentencepiece_vocab(tmp_path_factory):
  texts = [r["text"] for r in readers.nusax_sentiment("sun", "train")]
  texts += [r["text"] for r in readers.sib200_topic("eng", "train")]
  vocab = vocabularies.train_sentencepiece(texts, tmp_path_factory.mktemp("spm") / "spm",
                                           vocab_size=1000)
  vocabularies.set_active(vocab)
  yield vocab
  vocabularies.set_active(None)


@pytest.mark.parametrize("converter", sorted(CONVERTERS))
def test_seqio_feature_converters_accept_the_mixtures(converter, sentencepiece_vocab):
  feature_converter, key = CONVERTERS[converter]
  lengths = {"inputs": 96, "targets": 32}
  mixture = tasks.instructalign.alignment_mixture("pair_xss", "nusaxmt", "ind", ["sun", "bug"])
  ds = seqio.get_dataset(
      mixture, task_feature_lengths=lengths,
      dataset_split="train", shuffle=True, seed=0, feature_converter=feature_converter)
  batch = next(ds.batch(4).as_numpy_iterator())
  total = 128 if converter.startswith("decoder") else 96
  assert batch[key].shape == (4, total)
  assert batch["decoder_target_tokens"].max() < sentencepiece_vocab.vocab_size
  weights, targets = batch["decoder_loss_weights"], batch["decoder_target_tokens"]
  assert (weights[targets == 0] == 0).all() and weights.sum() > 0
  if converter == "decoder_unpacked":
    # Prefix LM: the loss covers the targets only, never the prompt.
    # (SeqIO's causal-attention region also covers the first target position.)
    for row_weights, row_causal in zip(weights, batch["decoder_causal_attention"]):
      prompt_length = int(row_causal.sum()) - 1
      assert prompt_length > 0
      assert (row_weights[:prompt_length] == 0).all() and row_weights[prompt_length] == 1
  if converter.endswith("_packed"):
    assert batch["decoder_segment_ids"].max() >= 1
