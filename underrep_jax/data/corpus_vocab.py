"""Choose a job's vocabulary: bytes, a tokenizer on disk, or SentencePiece trained on the
texts of the job's own mixture (for from-scratch models)."""

import pathlib
import time

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
  """`spec` is "bytes", "sentencepiece", a .model file, or a model directory or Hub id
  whose tokenizer (tokenizer.json, else its SentencePiece model) is read.

  A SentencePiece model already in `vocab_dir` is reused, so restarted jobs keep the
  vocabulary their checkpoints were trained with.
  """
  if spec == "bytes":
    return seqio.ByteVocabulary()
  if spec != "sentencepiece":
    return vocabularies.load(spec)
  model = pathlib.Path(vocab_dir) / "spm.model"
  if model.is_file():
    problem = vocabularies.sentencepiece_problem(model)
    if problem is None:
      logging.info("Reusing SentencePiece model %s", model)
      return seqio.SentencePieceVocabulary(str(model))
    # Training is deterministic, so retraining gives back the vocabulary the workdir's
    # checkpoints were trained with.
    aside = model.with_name(f"{model.name}.corrupt-{int(time.time())}")
    model.rename(aside)
    logging.warning("SentencePiece model %s does not load (%s); moved it to %s and "
                    "training it again", model, problem, aside.name)
  for stale in pathlib.Path(vocab_dir).glob(".spm.tmp-*"):  # a killed run's partial files
    stale.unlink(missing_ok=True)
  previous = vocabularies.ACTIVE.active
  vocabularies.set_active(None)
  try:
    texts = mixture_texts(mixture, split)
  finally:
    vocabularies.set_active(previous)
  logging.info("Training SentencePiece (%d pieces at most) on %d texts of %s", vocab_size,
               len(texts), mixture)
  return vocabularies.train_sentencepiece(texts, model.with_suffix(""), vocab_size)
