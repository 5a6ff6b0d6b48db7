"""Evaluation prompts: three English and three Indonesian variants per task type.

A classification prompt has the slots {text}, {language} (the text's language, named in
the prompt's language) and {options} (the label words, joined as in a sentence). It ends
where the answer starts; the answer is scored or generated as the continuation, with
`ANSWER_PREFIX` in front, the way instruction data such as xP3 joins prompt and answer.
"""

from collections.abc import Sequence
import dataclasses

from underrep_jax.data import languages

ENGLISH, INDONESIAN = "eng", "ind"
PROMPT_LANGUAGES = (ENGLISH, INDONESIAN)
ANSWER_PREFIX = " "

SENTIMENT, EMOTION, TOPIC = "sentiment", "emotion", "topic"

CLASSIFICATION_PROMPTS: dict[str, dict[str, tuple[str, ...]]] = {
    SENTIMENT: {
        ENGLISH: (
            "What is the sentiment of this {language} text? Choose {options}.\n"
            "Text: {text}\nSentiment:",
            "{text}\nIs the {language} text above {options}? Answer:",
            "Classify the sentiment of the following {language} sentence as {options}.\n"
            "{text}\nAnswer:",
        ),
        INDONESIAN: (
            "Apa sentimen dari teks berbahasa {language} ini? Pilih {options}.\n"
            "Teks: {text}\nSentimen:",
            "{text}\nApakah teks berbahasa {language} di atas {options}? Jawaban:",
            "Klasifikasikan sentimen kalimat berbahasa {language} berikut sebagai {options}.\n"
            "{text}\nJawaban:",
        ),
    },
    EMOTION: {
        ENGLISH: (
            "Which emotion does this {language} text express? Options: {options}.\n"
            "Text: {text}\nEmotion:",
            "{text}\nWhat does the writer of the {language} paragraph above feel: {options}? "
            "Answer:",
            "Classify the emotion of the following {language} paragraph as {options}.\n"
            "{text}\nAnswer:",
        ),
        INDONESIAN: (
            "Emosi apa yang diungkapkan teks berbahasa {language} ini? Pilihan: {options}.\n"
            "Teks: {text}\nEmosi:",
            "{text}\nApa yang dirasakan penulis paragraf berbahasa {language} di atas: "
            "{options}? Jawaban:",
            "Klasifikasikan emosi paragraf berbahasa {language} berikut sebagai {options}.\n"
            "{text}\nJawaban:",
        ),
    },
    TOPIC: {
        ENGLISH: (
            "What is the topic of this {language} text? Options: {options}.\n"
            "Text: {text}\nTopic:",
            "{text}\nWhich topic is the {language} text above about: {options}? Answer:",
            "Classify the topic of the following {language} text as {options}.\n"
            "{text}\nAnswer:",
        ),
        INDONESIAN: (
            "Apa topik teks berbahasa {language} ini? Pilihan: {options}.\n"
            "Teks: {text}\nTopik:",
            "{text}\nTeks berbahasa {language} di atas membahas topik apa: {options}? "
            "Jawaban:",
            "Klasifikasikan topik teks berbahasa {language} berikut sebagai {options}.\n"
            "{text}\nJawaban:",
        ),
    },
}

MT_PROMPTS: dict[str, tuple[str, ...]] = {
    ENGLISH: (
        "Translate the following text from {source_language} to {target_language}.\n"
        "{text}\n{target_language} translation:",
    ),
    INDONESIAN: (
        "Terjemahkan teks berikut dari bahasa {source_language} ke bahasa "
        "{target_language}.\n{text}\nTerjemahan bahasa {target_language}:",
    ),
}

# Dataset label -> label word, per prompt language.
VERBALIZERS: dict[str, dict[str, dict[str, str]]] = {
    "sentiment": {
        ENGLISH: {"negative": "negative", "neutral": "neutral", "positive": "positive"},
        INDONESIAN: {"negative": "negatif", "neutral": "netral", "positive": "positif"},
    },
    "emotion": {
        ENGLISH: {"angry": "angry", "disgusted": "disgusted", "fear": "afraid",
                  "happy": "happy", "sad": "sad", "shame": "ashamed",
                  "surprise": "surprised"},
        INDONESIAN: {"angry": "marah", "disgusted": "jijik", "fear": "takut",
                     "happy": "senang", "sad": "sedih", "shame": "malu",
                     "surprise": "terkejut"},
    },
    "nusaparagraph_topic": {
        ENGLISH: {"business": "business", "culture & heritage": "culture",
                  "food & beverages": "food", "leisures": "leisure", "religion": "religion",
                  "slice of life": "daily life", "sports": "sports",
                  "technology": "technology"},
        INDONESIAN: {"business": "bisnis", "culture & heritage": "budaya",
                     "food & beverages": "makanan", "leisures": "rekreasi",
                     "religion": "agama", "slice of life": "kehidupan sehari-hari",
                     "sports": "olahraga", "technology": "teknologi"},
    },
    "sib200_topic": {
        ENGLISH: {"science/technology": "science", "travel": "travel",
                  "politics": "politics", "sports": "sports", "health": "health",
                  "entertainment": "entertainment", "geography": "geography"},
        INDONESIAN: {"science/technology": "sains", "travel": "perjalanan",
                     "politics": "politik", "sports": "olahraga", "health": "kesehatan",
                     "entertainment": "hiburan", "geography": "geografi"},
    },
}
_OR = {ENGLISH: "or", INDONESIAN: "atau"}


@dataclasses.dataclass(frozen=True)
class Prompt:
  """One prompt variant of a classification task, ready to fill."""
  task_type: str
  prompt_language: str
  index: int
  template: str
  verbalizer: dict[str, str]

  @property
  def name(self) -> str:
    return f"{self.prompt_language}{self.index}"

  def fill(self, text: str, text_language: str) -> str:
    return self.template.format(text=text, language=language_name(text_language,
                                                                  self.prompt_language),
                                options=join_options(list(self.verbalizer.values()),
                                                     self.prompt_language))

  def answer(self, label: str) -> str:
    return ANSWER_PREFIX + self.verbalizer[label]


def language_name(code: str, prompt_language: str) -> str:
  """The language's name in the prompt language; a code outside the project's table (a
  user's task) stands for itself."""
  if code not in languages.LANGUAGES:
    return code
  if prompt_language == INDONESIAN:
    return languages.indonesian_name(code)
  return languages.english_name(code)


def join_options(words: list[str], prompt_language: str) -> str:
  return ", ".join(words[:-1]) + f" {_OR[prompt_language]} " + words[-1]


def classification_prompts(task_type: str, verbalizer_name: str,
                           labels: Sequence[str] | None = None,
                           prompt_languages=PROMPT_LANGUAGES) -> list[Prompt]:
  """All prompt variants (3 per prompt language) for a task type and label set.

  `labels` restricts the verbalizer to a dataset's own labels, in its order (binary
  NusaTranslation sentiment offers no "neutral").
  """
  if task_type not in CLASSIFICATION_PROMPTS:
    raise ValueError(f"unknown task type {task_type!r}; known: {list(CLASSIFICATION_PROMPTS)}")
  out = []
  for lang in prompt_languages:
    verbalizer = VERBALIZERS[verbalizer_name][lang]
    if labels is not None:
      missing = [label for label in labels if label not in verbalizer]
      if missing:
        raise ValueError(f"labels {missing} have no '{lang}' word in verbalizer "
                         f"{verbalizer_name!r}")
      verbalizer = {label: verbalizer[label] for label in labels}
    for i, template in enumerate(CLASSIFICATION_PROMPTS[task_type][lang]):
      out.append(Prompt(task_type, lang, i, template, verbalizer))
  return out


def fill_mt_prompt(text: str, source: str, target: str, prompt_language: str = ENGLISH,
                   index: int = 0) -> str:
  template = MT_PROMPTS[prompt_language][index]
  return template.format(text=text, source_language=language_name(source, prompt_language),
                         target_language=language_name(target, prompt_language))
