"""Choose a job's vocabulary: bytes, a tokenizer on disk, or SentencePiece trained on the
texts of the job's own mixture (for from-scratch models)."""

import pathlib

from absl import logging
import seqio

from underrep_jax.data import vocabularies

MAX_EXAMPLES_PER_TASK = 2000


def mixture_texts(name: str, split: str = "train",
                  max_per_task: int = MAX_EXAMPLES_PER_TASK) -> list[str]:
  """Prompt and answer texts of every task in a task or mixture, in registry order."""
  provider = seqio.get_mixture_or_task(name)
  task_list = [provider] if isinstance(provider, seqio.Task) else provider.tasks
  texts = []
  for task in task_list:
    if split not in task.splits:
      continue
    ds = task.get_dataset(sequence_length=None, split=split, shuffle=False, seed=0,
                          num_epochs=1)
    for ex in ds.take(max_per_task).as_numpy_iterator():
      for key in ("inputs_pretokenized", "targets_pretokenized"):
        if key in ex:
          texts.append(ex[key].decode("utf-8"))
  return texts


def resolve(spec: str, mixture: str, vocab_dir: str | pathlib.Path,
            vocab_size: int = 8000, split: str = "train") -> seqio.Vocabulary:
  """`spec` is "bytes", "sentencepiece", or a path to an HF tokenizer / .model file.

  A SentencePiece model already in `vocab_dir` is reused, so restarted jobs keep the
  vocabulary their checkpoints were trained with.
  """
  if spec == "bytes":
    return seqio.ByteVocabulary()
  if spec != "sentencepiece":
    return vocabularies.load(spec)
  model = pathlib.Path(vocab_dir) / "spm.model"
  if model.is_file():
    logging.info("Reusing SentencePiece model %s", model)
    return seqio.SentencePieceVocabulary(str(model))
  previous = vocabularies.ACTIVE.active
  vocabularies.set_active(None)
  try:
    texts = mixture_texts(mixture, split)
  finally:
    vocabularies.set_active(previous)
  logging.info("Training SentencePiece (%d pieces at most) on %d texts of %s", vocab_size,
               len(texts), mixture)
  return vocabularies.train_sentencepiece(texts, model.with_suffix(""), vocab_size)
