"""Float32 tolerances derived from the arithmetic, so they hold on any x86-64 CPU.

XLA's CPU backend compiles per instruction set: AVX2 and AVX-512 machines use different
vector widths, reduction orders, FMA contraction and exp/log approximations, and PyTorch
or NumPy sum in yet another order. Two correct float32 programs therefore differ by
rounding, and by how much follows from the size of the reductions, not from what passed
on one machine. A comparison that must be exact (resume, export round trips, reruns of one
program) does not use this module.
"""

import math

import numpy as np

EPS = float(np.finfo(np.float32).eps)  # 2**-23 ~ 1.19e-7, the float32 spacing at 1.0
MARGIN = 10.0


def float32_tol(reduction_size: int, depth: int = 1, scale: float = 1.0,
                margin: float = MARGIN) -> float:
  """Tolerance for a float32 result computed two ways: margin * EPS * sqrt(n) * depth * scale.

  Model: a sum of n float32 terms rounds n times; the errors are independent and add up
  like a random walk, so reordering it moves the result by ~EPS * sqrt(n) of its magnitude
  (the worst case, every rounding in one direction, is EPS * n; MARGIN * sqrt(n) >= n for
  n <= 100, so there the bound is rigorous). `reduction_size` is the longest reduction on
  the path (the contraction length of a matmul, the vocabulary of a log-softmax, the row of
  a log-sum-exp); `depth` counts the chained ones (layers), whose errors add; `scale` is
  the magnitude of the compared values, so scale=1 gives an rtol and scale=|x| an atol.
  A test whose bug signal is within 10x of that passes a smaller `margin` and says why.
  """
  if reduction_size < 1 or depth < 1:
    raise ValueError(f"expected reduction_size >= 1 and depth >= 1, got {reduction_size}, "
                     f"{depth}")
  return margin * EPS * math.sqrt(reduction_size) * depth * scale
