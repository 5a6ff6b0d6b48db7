"""See what the model sees: list SeqIO tasks and mixtures, or print their examples.

    python -m underrep_jax.show --list [--filter=nusax] [--task_modules=my_tasks]
    python -m underrep_jax.show instructalign_pair_xss_flores_eng -n 5 [--split=train]
        [--vocab=PATH_TO_TOKENIZER_DIR_OR_SPM_MODEL] [--data_dir=DIR] [--seed=0]

`--task_modules` imports a user's modules first (they register tasks and mixtures), as
the jobs' `config.task_modules` does.

Examples are fully preprocessed (prompt, noise, tokenization, EOS) and decoded back to
text with the vocabulary, so what is printed is exactly what a model would be fed.
A user error (a bad vocabulary path, unreadable data) is one line on stderr and exit code
1 (2 for configuration errors); --debug shows the traceback.
"""

import sys

from absl import app
from absl import flags

_LIST = flags.DEFINE_bool("list", False, "List every registered task and mixture.")
_FILTER = flags.DEFINE_string("filter", "", "With --list: only names containing this.")
_SPLIT = flags.DEFINE_string("split", "train", "Split to read.")
_NUM = flags.DEFINE_integer("num_examples", 5, "How many examples to print.", short_name="n")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the stochastic preprocessing.")
_VOCAB = flags.DEFINE_string("vocab", "", "Tokenizer: an HF directory with tokenizer.json or "
                             "a SentencePiece .model file (default: UTF-8 bytes).")
if "debug" not in flags.FLAGS:  # main.py defines it too (the inspect_data job imports us)
  flags.DEFINE_bool("debug", False, "Full tracebacks instead of one-line errors.")
_TASK_MODULES = flags.DEFINE_string("task_modules", "", "Comma-separated modules to import "
                                    "first (they register a user's tasks and mixtures).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Data directory (default: $UNDERREP_DATA_DIR, "
                                "else download from the upstream repositories).")


def list_names(pattern: str = "") -> tuple[list[str], list[str]]:
  import seqio
  import tasks  # noqa: F401  (registers everything)
  task_names = sorted(n for n in seqio.TaskRegistry.names() if pattern in n)
  mixture_names = sorted(n for n in seqio.MixtureRegistry.names() if pattern in n)
  return task_names, mixture_names


def iter_examples(name: str, split: str, seed: int = 0, num_epochs: int | None = 1):
  """Preprocessed examples of a task or mixture, decoded back to text, one dict each."""
  import seqio
  import tasks  # noqa: F401
  from underrep_jax.data import vocabularies
  from underrep_jax.errors import ConfigError
  try:
    provider = seqio.get_mixture_or_task(name)
  except ValueError as e:
    raise ConfigError(f"no task or mixture named {name!r}; see --list") from e
  if split not in provider.splits:
    raise ConfigError(f"{name} has no split {split!r}; it has {sorted(provider.splits)}")
  ds = provider.get_dataset(sequence_length=None, split=split, shuffle=False, seed=seed,
                            num_epochs=num_epochs)
  for ex in ds.as_numpy_iterator():
    row = {}
    for key in ("inputs", "targets"):
      if key in ex:
        ids = [int(i) for i in ex[key]]
        row[key] = vocabularies.ACTIVE.decode(ids)
        row[f"{key}_tokens"] = len(ids)
    for key, value in ex.items():
      if key in ("inputs", "targets") or key.endswith("_pretokenized"):
        continue
      if getattr(value, "ndim", 1) == 0:
        row[key] = value.decode() if isinstance(value, bytes) else value.item()
    yield row


def examples(name: str, split: str, num_examples: int, seed: int = 0) -> list[dict]:
  """The first `num_examples` preprocessed examples of a task or mixture, as text."""
  rows = []
  for row in iter_examples(name, split, seed):
    if len(rows) >= num_examples:
      break
    rows.append(row)
  return rows


def print_examples(rows: list[dict], stream=sys.stdout) -> None:
  for i, row in enumerate(rows):
    meta = ", ".join(f"{k}={v}" for k, v in row.items()
                     if k not in ("inputs", "targets") and not k.endswith("_tokens"))
    print(f"=== example {i}" + (f" ({meta})" if meta else ""), file=stream)
    for key in ("inputs", "targets"):
      if key in row:
        print(f"--- {key} ({row[f'{key}_tokens']} tokens):", file=stream)
        print(row[key], file=stream)
  if not rows:
    print("(no examples)", file=stream)


def main(argv: list[str]) -> None:
  from underrep_jax import errors
  try:
    _main(argv)
  except Exception as e:  # pylint: disable=broad-except
    user_error = errors.as_user_error(e)
    if user_error is None or flags.FLAGS.debug:
      raise
    print(f"underrep_jax.show: {errors.one_line(user_error)}", file=sys.stderr)
    sys.exit(user_error.exit_code)


def _main(argv: list[str]) -> None:
  from underrep_jax.data import sources
  from underrep_jax.data import vocabularies
  if _DATA_DIR.value:
    sources.set_data_dir(_DATA_DIR.value)
  if _VOCAB.value:
    vocabularies.set_active(vocabularies.load(_VOCAB.value))
  if _TASK_MODULES.value:
    import tasks
    tasks.registry.import_modules(_TASK_MODULES.value, field="--task_modules")
  if _LIST.value:
    task_names, mixture_names = list_names(_FILTER.value)
    print(f"# {len(task_names)} tasks")
    print("\n".join(task_names))
    print(f"# {len(mixture_names)} mixtures")
    print("\n".join(mixture_names))
    return
  if len(argv) != 2:
    raise app.UsageError("give one task or mixture name, or --list")
  print_examples(examples(argv[1], _SPLIT.value, _NUM.value, _SEED.value))


if __name__ == "__main__":
  app.run(main)
