"""Side-by-side timing shared by the benchmarks."""

from collections.abc import Callable
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
