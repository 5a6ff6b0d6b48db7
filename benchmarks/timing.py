"""Side-by-side timing shared by the benchmarks."""

from collections.abc import Callable
import statistics
import time
from typing import Any


def alternate(fns: dict[str, Callable[[], Any]], runs: int) -> dict[str, list[float]]:
  """Seconds per call of each function, `runs` times, taking turns between them so that
  load from elsewhere on a shared machine hits every contender alike."""
  times: dict[str, list[float]] = {name: [] for name in fns}
  for _ in range(runs):
    for name, fn in fns.items():
      start = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - start)
  return times


def race(ours: Callable[[], Any], theirs: Callable[[], Any], runs: int
         ) -> tuple[tuple[Any, Any], float, float]:
  """((our first result, theirs), our median seconds, theirs): a first call each (their
  results, e.g. first-step losses, are the parity check), a warm-up call each
  (compilation, allocators, thread pools), then `runs` alternating timed calls."""
  first = ours(), theirs()
  ours(), theirs()
  times = alternate({"ours": ours, "theirs": theirs}, runs)
  return first, statistics.median(times["ours"]), statistics.median(times["theirs"])
