"""InstructAlign alignment examples: MLM, TLM, MT and XSS built from parallel pairs.

Plain Python, so the same code serves the SeqIO tasks, the tests and anyone who wants to
look at an example. Each objective has six instruction templates; one is drawn uniformly
per example. Language names are written out ("Sundanese"), never codes.
"""

from collections.abc import Sequence
import dataclasses

import numpy as np

from underrep_jax.data import noise

MLM, TLM, MT, XSS = "mlm", "tlm", "mt", "xss"
OBJECTIVES = (MLM, TLM, MT, XSS)

# Named objective sets of the original work (METHODS.md §1). Names use underscores
# because SeqIO task and mixture names may not contain hyphens.
OBJECTIVE_SETS: dict[str, tuple[str, ...]] = {
    "pair": (MT, TLM),
    "pair_xss": (MT, TLM, XSS),
    "random": (MLM, MT, TLM),
    "random_xss": (MLM, MT, TLM, XSS),
    "bilingual_xss": (TLM, XSS),
    "mlm": (MLM,),
    "tlm": (TLM,),
    "mt": (MT,),
    "xss": (XSS,),
}

# XSS negatives. "mismatch" pairs a sentence with a different sentence of the corpus, so
# the model must judge meaning. "corrupt" (the original code) noises both sides of a true
# pair, which teaches noise detection rather than meaning. Default: mismatch.
MISMATCH, CORRUPT = "mismatch", "corrupt"
XSS_NEGATIVES = (MISMATCH, CORRUPT)
DEFAULT_XSS_NEGATIVES = MISMATCH
YES, NO = "yes", "no"

# {lang}: language of the noisy text; {noisy}: noised sentence.
MLM_TEMPLATES = (
    "The following {lang} sentence has hidden, missing or shuffled words. Rewrite it as a "
    "correct {lang} sentence.\n{noisy}",
    "Fix this damaged {lang} text: {noisy}\nCorrected {lang} text:",
    "Reconstruct the original {lang} sentence from this noisy version.\nNoisy: {noisy}\n"
    "Original:",
    "Some words of this {lang} text were replaced by ___, removed or put out of order. "
    "Restore the text.\n{noisy}",
    "{noisy}\nThe line above is a damaged {lang} sentence. Write the intact sentence.",
    "Denoise the {lang} sentence below.\n{noisy}",
)
# {src_lang}/{src}: clean context; {tgt_lang}/{noisy}: the noised sentence to repair.
TLM_TEMPLATES = (
    "{src_lang} sentence: {src}\nNoisy {tgt_lang} sentence: {noisy}\nRepair the {tgt_lang} "
    "sentence so that it means the same as the {src_lang} sentence.",
    "Here is a sentence in {src_lang}: {src}\nHere is a damaged translation of it in "
    "{tgt_lang}: {noisy}\nWrite the correct {tgt_lang} translation.",
    "Use the {src_lang} text as a reference and fix the {tgt_lang} text.\nReference "
    "({src_lang}): {src}\nTo fix ({tgt_lang}): {noisy}\nFixed:",
    "The {tgt_lang} sentence below has hidden, missing or shuffled words. It translates this "
    "{src_lang} sentence: {src}\n{tgt_lang}: {noisy}\nRewrite the {tgt_lang} sentence "
    "correctly.",
    "Context in {src_lang}: {src}\nCorrupted {tgt_lang}: {noisy}\nCorrected {tgt_lang}:",
    "Given the {src_lang} sentence \"{src}\", restore the {tgt_lang} sentence \"{noisy}\".",
)
MT_TEMPLATES = (
    "Translate this from {src_lang} to {tgt_lang}.\n{src}",
    "Translate the following {src_lang} text into {tgt_lang}: {src}",
    "{src_lang}: {src}\n{tgt_lang}:",
    "How do you say this {src_lang} sentence in {tgt_lang}? \"{src}\"",
    "Write the {tgt_lang} translation of this {src_lang} sentence.\n{src}",
    "Text in {src_lang}: {src}\nThe same text in {tgt_lang}:",
)
# {src}/{tgt}: the two sentences to compare; the target is "yes" or "no".
XSS_TEMPLATES = (
    "Sentence 1 ({src_lang}): {src}\nSentence 2 ({tgt_lang}): {tgt}\nDo the two sentences "
    "mean the same thing? Answer yes or no.",
    "Is \"{tgt}\" in {tgt_lang} a translation of \"{src}\" in {src_lang}? Answer yes or no.",
    "{src_lang}: {src}\n{tgt_lang}: {tgt}\nAre these two sentences translations of each "
    "other (yes/no)?",
    "Do this {src_lang} sentence and this {tgt_lang} sentence have the same meaning? Answer "
    "with yes or no.\n{src}\n{tgt}",
    "Read the {src_lang} sentence and the {tgt_lang} sentence, then say yes if they mean the "
    "same and no otherwise.\n{src_lang}: {src}\n{tgt_lang}: {tgt}",
    "Check this translation from {src_lang} into {tgt_lang}.\nSource: {src}\nTranslation: "
    "{tgt}\nIs it correct? Answer yes or no.",
)
TEMPLATES = {MLM: MLM_TEMPLATES, TLM: TLM_TEMPLATES, MT: MT_TEMPLATES, XSS: XSS_TEMPLATES}


@dataclasses.dataclass(frozen=True)
class Pair:
  """One direction of a parallel pair; language fields hold English language names."""
  source: str
  target: str
  source_language: str
  target_language: str


@dataclasses.dataclass(frozen=True)
class Example:
  inputs: str
  targets: str
  objective: str
  template: int


def _template(objective: str, rng: np.random.Generator) -> tuple[int, str]:
  index = int(rng.integers(len(TEMPLATES[objective])))
  return index, TEMPLATES[objective][index]


def make_example(objective: str, pair: Pair, rng: np.random.Generator, *,
                 distractors: Sequence[str] = (), pair_index: int = -1,
                 xss_negatives: str = DEFAULT_XSS_NEGATIVES,
                 noise_config: noise.NoiseConfig = noise.NoiseConfig()) -> Example:
  """Builds one training example of `objective` from a parallel pair.

  `distractors` are the target-language sentences of the corpus, and `pair_index` this
  pair's position in them; XSS "mismatch" negatives draw another sentence from there.
  """
  if objective not in TEMPLATES:
    raise ValueError(f"unknown InstructAlign objective {objective!r}; known: {OBJECTIVES}")
  index, template = _template(objective, rng)
  src_lang, tgt_lang = pair.source_language, pair.target_language
  if objective == MLM:
    noisy, _ = noise.add_noise(pair.source, rng, noise_config)
    return Example(template.format(lang=src_lang, noisy=noisy), pair.source, MLM, index)
  if objective == TLM:
    noisy, _ = noise.add_noise(pair.target, rng, noise_config)
    inputs = template.format(src_lang=src_lang, src=pair.source, tgt_lang=tgt_lang, noisy=noisy)
    return Example(inputs, pair.target, TLM, index)
  if objective == MT:
    inputs = template.format(src_lang=src_lang, src=pair.source, tgt_lang=tgt_lang)
    return Example(inputs, pair.target, MT, index)
  return _xss_example(template, index, pair, rng, distractors, pair_index, xss_negatives,
                      noise_config)


def _xss_example(template: str, index: int, pair: Pair, rng: np.random.Generator,
                 distractors: Sequence[str], pair_index: int, xss_negatives: str,
                 noise_config: noise.NoiseConfig) -> Example:
  if xss_negatives not in XSS_NEGATIVES:
    raise ValueError(f"unknown XSS negative type {xss_negatives!r}; known: {XSS_NEGATIVES}")
  source, target, answer = pair.source, pair.target, YES
  if rng.random() >= 0.5:
    answer = NO
    if xss_negatives == CORRUPT:
      source, target = _corrupt_pair(pair, rng, noise_config)
    else:
      target = _other_sentence(distractors, pair_index, pair.target, rng)
  inputs = template.format(src_lang=pair.source_language, src=source,
                           tgt_lang=pair.target_language, tgt=target)
  return Example(inputs, answer, XSS, index)


def _corrupt_pair(pair: Pair, rng: np.random.Generator,
                  noise_config: noise.NoiseConfig) -> tuple[str, str]:
  """Noises both sides; redraws while both come out unchanged (short sentences can)."""
  for _ in range(32):
    source, _ = noise.add_noise(pair.source, rng, noise_config)
    target, _ = noise.add_noise(pair.target, rng, noise_config)
    if source != pair.source or target != pair.target:
      break
  return source, target


def _other_sentence(sentences: Sequence[str], own_index: int, own_text: str,
                    rng: np.random.Generator) -> str:
  """A sentence of the corpus other than the pair's own translation."""
  candidates = len(sentences)
  if candidates < 2:
    raise ValueError("XSS mismatch negatives need a corpus of at least two sentences")
  for _ in range(16):
    j = int(rng.integers(candidates))
    if j != own_index and sentences[j] != own_text:
      return sentences[j]
  j = (own_index + 1 + int(rng.integers(candidates - 1))) % candidates
  return sentences[j]
