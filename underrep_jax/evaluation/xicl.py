"""X-ICL prompts: exemplars `text => label`, label alignment and query alignment.

A prompt is an instruction line, the exemplars, and the query as `text =>`; each label
word is scored as the continuation. Two kinds of alignment lines go before or after the
exemplars (each placed on its own; the paper's default, "after", for both):
  label alignment  one line naming the target language and mapping each source label
                   word to its target-language word;
  query alignment  one line per parallel pair retrieved for the query, naming the target
                   language and quoting the local sentence and its translation.
Where both land on the same side, the query-alignment lines come first, as in the
paper's prompter (SamuelCahyawijaya/in-context-alignment, `ICLPrompter`).
"""

from collections.abc import Mapping, Sequence

from underrep_jax.data import prompts as prompt_lib
from underrep_jax.data import readers
from underrep_jax.data.errors import DataError

LABEL_VARIANTS = ("source", "target", "align")
POSITIONS = ("before", "after")
QUERY_ALIGNMENTS = ("none",) + POSITIONS
PAPER_POSITION = "after"

INSTRUCTIONS = {
    prompt_lib.ENGLISH: {
        "sentiment": "Classify the sentiment of each text as {options}.",
        "emotion": "Classify the emotion of each text as {options}.",
        "topic": "Classify the topic of each text as {options}.",
    },
    prompt_lib.INDONESIAN: {
        "sentiment": "Klasifikasikan sentimen setiap teks sebagai {options}.",
        "emotion": "Klasifikasikan emosi setiap teks sebagai {options}.",
        "topic": "Klasifikasikan topik setiap teks sebagai {options}.",
    },
}
_MEANS = {prompt_lib.ENGLISH: "means", prompt_lib.INDONESIAN: "artinya"}
_LABEL_ALIGNMENT = {prompt_lib.ENGLISH: "Labels in {language}: {pairs}.",
                    prompt_lib.INDONESIAN: "Label dalam bahasa {language}: {pairs}."}
_QUERY_ALIGNMENT = {
    prompt_lib.ENGLISH: 'The {language} sentence "{local}" means "{source}".',
    prompt_lib.INDONESIAN: 'Kalimat bahasa {language} "{local}" artinya "{source}".',
}

# Indonesian words looked up in the NusaX lexicon for target-language sentiment labels.
_LEXICON_SEEDS = {"negative": ("negatif", "buruk", "jelek"),
                  "neutral": ("netral", "biasa", "sedang"),
                  "positive": ("positif", "baik", "bagus")}

# Parallel corpora for query alignment: corpus -> reader(source, target, split).
ALIGNMENT_CORPORA = {"nusax_mt": readers.nusax_mt_pairs,
                     "nusatranslation_mt": readers.nusatranslation_mt_pairs}
# Preferred first: NusaX-MT pairs the local language with the pool's own language (eng,
# ind); NusaTranslation-MT (Indonesian <-> local) covers the NusaTranslation languages
# NusaX lacks (abs, bew, bhp, btk, mak, mui, rej).
_CORPUS_PREFERENCE = ("nusax_mt", "nusatranslation_mt")


def parse_map(text: str) -> dict[str, str]:
  """"negative=awon,positive=alus" -> {"negative": "awon", "positive": "alus"}."""
  out = {}
  for item in filter(None, (s.strip() for s in text.split(","))):
    if "=" not in item:
      raise ValueError(f"map entry {item!r} is not key=value")
    key, value = (s.strip() for s in item.split("=", 1))
    out[key] = value
  return out


def alignment_source(language: str, overrides: Mapping[str, str] | None = None) -> str:
  """The parallel corpus query alignment draws on for `language`: the override, else
  NusaX-MT where it has the language, else NusaTranslation-MT.

  The paper stood in Toba Batak (bbc) for btk and Buginese (bug) for mak in NusaX-MT;
  we use the languages' own NusaTranslation-MT sentences instead.
  """
  corpus = (overrides or {}).get(language)
  if corpus is not None:
    if corpus not in ALIGNMENT_CORPORA:
      raise ValueError(f"alignment source {corpus!r} for {language!r}: unknown; known: "
                       f"{', '.join(ALIGNMENT_CORPORA)}")
    return corpus
  for corpus in _CORPUS_PREFERENCE:
    if language in readers.available_languages(corpus):
      return corpus
  raise ValueError(f"no parallel corpus has {language!r} for query alignment; known: "
                   f"{', '.join(ALIGNMENT_CORPORA)}")


def alignment_pairs(language: str, source_language: str, corpus: str,
                    splits: Sequence[str]) -> list[dict]:
  """Pairs {source, target (= `language`), ...} from `corpus`, all `splits` concatenated.

  NusaTranslation-MT pairs only with Indonesian, so its source side is Indonesian
  whatever the pool language.
  """
  if corpus == "nusatranslation_mt":
    source_language = "ind"
  rows = []
  for split in splits:
    rows += ALIGNMENT_CORPORA[corpus](source_language, language, split)
  if not rows:
    raise DataError(f"{corpus}: no {'+'.join(splits)} pairs for {source_language!r} -> "
                    f"{language!r}")
  return rows


def target_label_words(labels: Sequence[str], language: str,
                       explicit: Mapping[str, str] | None = None) -> dict[str, str]:
  """Target-language label words: the explicit map, else the NusaX lexicon (sentiment).

  Raises a ValueError naming each label with no word.
  """
  words = dict(explicit or {})
  missing = [label for label in labels if label not in words]
  if missing and all(label in _LEXICON_SEEDS for label in missing):
    try:
      lexicon = readers.nusax_lexicon(language)
    except DataError:
      lexicon = []
    for label in missing:
      for seed in _LEXICON_SEEDS[label]:
        hit = next((row[language] for row in lexicon if row["ind"] == seed), None)
        if hit:
          words[label] = hit
          break
  missing = [label for label in labels if label not in words]
  if missing:
    raise ValueError(f"label map for {language!r} has no word for labels {missing}; give "
                     "them as --config.target_labels=label=word,...")
  return {label: words[label] for label in labels}


def _one_line(text: str) -> str:
  return " ".join(text.split())


def label_alignment_line(source: Mapping[str, str], target: Mapping[str, str],
                         language: str, prompt_language: str) -> str:
  """One line: the target language's name, then "<source> means <target>" per label."""
  means = _MEANS[prompt_language]
  pairs = ", ".join(f"{source[label]} {means} {target[label]}" for label in source)
  return _LABEL_ALIGNMENT[prompt_language].format(
      language=prompt_lib.language_name(language, prompt_language), pairs=pairs)


def query_alignment_lines(pairs: Sequence[tuple[str, str]], language: str,
                          prompt_language: str) -> list[str]:
  """One line per (local-language sentence, its translation) pair, both quoted."""
  name = prompt_lib.language_name(language, prompt_language)
  return [_QUERY_ALIGNMENT[prompt_language].format(language=name, local=_one_line(local),
                                                   source=_one_line(source))
          for local, source in pairs]


def instruction(task_type: str, words: Sequence[str], prompt_language: str) -> str:
  return INSTRUCTIONS[prompt_language][task_type].format(
      options=prompt_lib.join_options(list(words), prompt_language))


def _check_position(position: str, what: str) -> None:
  if position not in POSITIONS:
    raise ValueError(f"unknown {what} position {position!r}; known: {', '.join(POSITIONS)}")


def build_prompt(instruction_line: str, exemplars: Sequence[tuple[str, str]], query: str,
                 label_alignment: str | None = None, label_position: str = PAPER_POSITION,
                 query_alignment: Sequence[str] = (),
                 query_position: str = PAPER_POSITION) -> str:
  """The prompt up to `=>`; the answer is scored as " <label word>"."""
  _check_position(label_position, "label-alignment")
  _check_position(query_position, "query-alignment")
  blocks = {position: [] for position in POSITIONS}
  blocks[query_position].extend(query_alignment)
  if label_alignment:
    blocks[label_position].append(label_alignment)
  return "\n".join([instruction_line, *blocks["before"],
                    *(f"{_one_line(text)} => {label}" for text, label in exemplars),
                    *blocks["after"], f"{_one_line(query)} =>"])


def label_words(variant: str, source: Mapping[str, str], target: Mapping[str, str]):
  """(exemplar label words, candidate words, alignment line wanted) for a label variant."""
  if variant == "source":
    return source, source, False
  if variant == "target":
    return target, target, False
  if variant == "align":
    return source, target, True
  raise ValueError(f"unknown label variant {variant!r}; known: {', '.join(LABEL_VARIANTS)}")
