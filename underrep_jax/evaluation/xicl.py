"""X-ICL prompts: exemplars `text => label`, label alignment and query alignment.

A prompt is an instruction line, optionally a label-alignment line (each source label
word mapped to its target-language word), optionally query-alignment lines ("X means Y"
for parallel pairs similar to the query) before or after the exemplars, the exemplars,
and the query as `text =>`; each label word is scored as the continuation.
"""

from collections.abc import Mapping, Sequence

from underrep_jax.data import prompts as prompt_lib
from underrep_jax.data import readers
from underrep_jax.data.errors import DataError

LABEL_VARIANTS = ("source", "target", "align")
ALIGN_POSITIONS = ("none", "before", "after")

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
_LABELS_WORD = {prompt_lib.ENGLISH: "Labels", prompt_lib.INDONESIAN: "Label"}

# Indonesian words looked up in the NusaX lexicon for target-language sentiment labels.
_LEXICON_SEEDS = {"negative": ("negatif", "buruk", "jelek"),
                  "neutral": ("netral", "biasa", "sedang"),
                  "positive": ("positif", "baik", "bagus")}


def parse_label_map(text: str) -> dict[str, str]:
  """"negative=awon,positive=alus" -> {"negative": "awon", "positive": "alus"}."""
  out = {}
  for item in filter(None, (s.strip() for s in text.split(","))):
    if "=" not in item:
      raise ValueError(f"label map entry {item!r} is not label=word")
    label, word = (s.strip() for s in item.split("=", 1))
    out[label] = word
  return out


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


def label_alignment_line(source: Mapping[str, str], target: Mapping[str, str],
                         prompt_language: str) -> str:
  means = _MEANS[prompt_language]
  pairs = ", ".join(f"{source[label]} {means} {target[label]}" for label in source)
  return f"{_LABELS_WORD[prompt_language]}: {pairs}."


def query_alignment_lines(pairs: Sequence[tuple[str, str]], prompt_language: str) -> list[str]:
  """One line per (target-language sentence, source-language sentence) pair."""
  return [f"{target} {_MEANS[prompt_language]} {source}" for target, source in pairs]


def instruction(task_type: str, words: Sequence[str], prompt_language: str) -> str:
  return INSTRUCTIONS[prompt_language][task_type].format(
      options=prompt_lib.join_options(list(words), prompt_language))


def _one_line(text: str) -> str:
  return " ".join(text.split())


def build_prompt(instruction_line: str, exemplars: Sequence[tuple[str, str]], query: str,
                 label_alignment: str | None = None,
                 query_alignment: Sequence[str] = (), position: str = "before") -> str:
  """The prompt up to `=>`; the answer is scored as " <label word>"."""
  if position not in ALIGN_POSITIONS:
    raise ValueError(f"unknown query-alignment position {position!r}; known: "
                     f"{', '.join(ALIGN_POSITIONS)}")
  lines = [instruction_line]
  if label_alignment:
    lines.append(label_alignment)
  if position == "before":
    lines.extend(query_alignment)
  lines.extend(f"{_one_line(text)} => {label}" for text, label in exemplars)
  if position == "after":
    lines.extend(query_alignment)
  lines.append(f"{_one_line(query)} =>")
  return "\n".join(lines)


def label_words(variant: str, source: Mapping[str, str], target: Mapping[str, str]):
  """(exemplar label words, candidate words, alignment line wanted) for a label variant."""
  if variant == "source":
    return source, source, False
  if variant == "target":
    return target, target, False
  if variant == "align":
    return source, target, True
  raise ValueError(f"unknown label variant {variant!r}; known: {', '.join(LABEL_VARIANTS)}")
