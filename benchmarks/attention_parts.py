"""The parts of a train step the README's "Benchmarks" gap analysis names, ours vs PyTorch.

Attention's core (`layers.xla_attention`, forward and backward; PyTorch: head-major
matmuls, masked fill, softmax) at MiniLM's shape (32 x 128 tokens, 12 heads of 32,
padding mask) and at the BLOOM benchmark's (8 x 256, 8 heads of 64, ALiBi and the causal
mask), the tied output head's three matmuls at that BLOOM's shape (2048 tokens, 512
wide, 16384 vocabulary), and a dense layer's forward, input-gradient and weight-gradient
matmuls at that BLOOM's four layer shapes (2048 tokens). float32; medians of alternating
runs (benchmarks/timing.py).
Each line ends with `ratio=`: torch time / ours (>1: ours is faster).

  python benchmarks/attention_parts.py [--runs=7]
"""

import argparse
import functools
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from underrep_jax.models import layers  # noqa: E402

import timing  # noqa: E402  benchmarks/timing.py


def attention_case(batch, length, heads, head_dim, alibi: bool):
  """(ours, torch) callables running attention forward and backward on the same inputs."""
  rng = np.random.default_rng(0)
  q, k, v = (rng.standard_normal((batch, length, heads, head_dim)).astype(np.float32)
             for _ in range(3))
  if alibi:  # causal, ALiBi [B, N, 1, S]
    mask = np.tril(np.ones((length, length), bool))[None, None].repeat(batch, 0)
    bias = np.asarray(layers.alibi_bias(heads, jnp.broadcast_to(jnp.arange(length),
                                                                (batch, length))))
  else:  # padding: the last quarter of every row's keys
    mask = np.ones((batch, 1, length, length), bool)
    mask[..., length * 3 // 4:] = False
    bias = None
  jmask, jbias = jnp.asarray(mask), None if bias is None else jnp.asarray(bias)
  grad = jax.jit(jax.grad(
      lambda q, k, v: jnp.sum(layers.xla_attention(q, k, v, bias=jbias, mask=jmask) ** 2),
      argnums=(0, 1, 2)))
  args = [jnp.asarray(x) for x in (q, k, v)]
  tq, tk, tv = (torch.from_numpy(x.copy()).requires_grad_(True) for x in (q, k, v))
  tmask = torch.from_numpy(mask)
  tbias = None if bias is None else torch.from_numpy(bias.copy())

  def theirs():
    for t in (tq, tk, tv):
      t.grad = None
    qh, kh, vh = (x.permute(0, 2, 1, 3) for x in (tq, tk, tv))
    scores = (qh @ kh.transpose(-1, -2)) * head_dim ** -0.5
    if tbias is not None:
      scores = scores + tbias
    scores = scores.masked_fill(~tmask, torch.finfo(torch.float32).min)
    out = torch.softmax(scores, -1) @ vh
    (out.permute(0, 2, 1, 3).contiguous() ** 2).sum().backward()

  return (lambda: jax.block_until_ready(grad(*args))), theirs


def matmul_case(spec: str, *operands: np.ndarray, theirs):
  """(ours, torch): `jnp.einsum(spec, ...)` jitted, against `theirs` on torch copies of the
  same operands."""
  ours_args = [jnp.asarray(x) for x in operands]
  torch_args = [torch.from_numpy(x.copy()) for x in operands]
  compiled = jax.jit(functools.partial(jnp.einsum, spec))
  return (lambda: jax.block_until_ready(compiled(*ours_args))), (lambda: theirs(*torch_args))


def head_cases(tokens=2048, width=512, vocab=16384):
  """{name: (ours, torch)} for the tied head's forward and its two gradients."""
  rng = np.random.default_rng(0)
  h = rng.standard_normal((tokens, width)).astype(np.float32)
  embedding = rng.standard_normal((vocab, width)).astype(np.float32)
  grad = rng.standard_normal((tokens, vocab)).astype(np.float32)
  return {
      "head forward h E^T": matmul_case("td,vd->tv", h, embedding, theirs=lambda h, e: h @ e.t()),
      "head dE = g^T h": matmul_case("tv,td->vd", grad, h, theirs=lambda g, h: g.t() @ h),
      "head dh = g E": matmul_case("tv,vd->td", grad, embedding, theirs=lambda g, e: g @ e),
  }


def dense_cases(tokens=2048, shapes=((512, 1536), (512, 512), (512, 2048), (2048, 512))):
  """{name: (ours, torch)} for a dense layer's three matmuls at the BLOOM benchmark's
  layer shapes (qkv, attention out, MLP in, MLP out): forward x W, the input gradient
  g W^T and the weight gradient x^T g, which contracts over the tokens."""
  rng = np.random.default_rng(0)
  out = {}
  for d_in, d_out in shapes:
    x = rng.standard_normal((tokens, d_in)).astype(np.float32)
    w = rng.standard_normal((d_in, d_out)).astype(np.float32)
    g = rng.standard_normal((tokens, d_out)).astype(np.float32)
    name = f"dense {d_in}->{d_out}"
    out[f"{name} x W"] = matmul_case("td,df->tf", x, w, theirs=lambda x, w: x @ w)
    out[f"{name} dx = g W^T"] = matmul_case("tf,df->td", g, w, theirs=lambda g, w: g @ w.t())
    out[f"{name} dW = x^T g"] = matmul_case("td,tf->df", x, g, theirs=lambda x, g: x.t() @ g)
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--runs", type=int, default=7)
  parser.add_argument("--threads", type=int, default=os.cpu_count())
  args = parser.parse_args()
  torch.set_num_threads(args.threads)
  cases = {"attention MiniLM 32x128, 12x32, padding": attention_case(32, 128, 12, 32, False),
           "attention BLOOM 8x256, 8x64, ALiBi causal": attention_case(8, 256, 8, 64, True),
           **head_cases(), **dense_cases()}
  for name, (ours, theirs) in cases.items():
    _, ours_s, torch_s = timing.race(ours, theirs, args.runs)
    print(f"{name:45s} ours {ours_s * 1e3:7.1f} ms  torch {torch_s * 1e3:7.1f} ms  "
          f"ratio={torch_s / ours_s:.2f}")


if __name__ == "__main__":
  main()
