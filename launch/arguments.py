"""Command-line parsing shared by the launchers."""

import argparse


def parse_with_main_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
  """Parses the launcher's own flags; everything after "--" goes to underrep_jax.main
  unchanged, as `args.main_args`."""
  split = argv.index("--") if "--" in argv else len(argv)
  args = parser.parse_args(argv[:split])
  args.main_args = argv[split + 1:]
  return args
