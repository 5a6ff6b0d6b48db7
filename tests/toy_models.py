"""Tiny Flax LMs with logical axis names, and a script that trains one (for subprocess tests).

The models follow the model zoo's conventions (linen, params boxed with
`nn.with_logical_partitioning`, `apply({'params': p}, tokens, segment_ids=...,
positions=...) -> logits [B, T, V]`) so the training loop is tested model-agnostically.

    PYTHONPATH=. python tests/toy_models.py --workdir DIR [--steps 12 --checkpoint_every 3
        --mesh 8,1,1 --delay 0.4 --init model|numpy --distributed]
trains the toy decoder on deterministic synthetic batches through `train.loop` (resuming
from DIR) and writes the final params to DIR/final_params.npz (used by the resume and
multi-process tests). With --distributed it joins a jax.distributed job described by
UNDERREP_COORDINATOR / UNDERREP_NUM_PROCESSES / UNDERREP_PROCESS_ID, with gloo collectives.
"""

import argparse
import os
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from tolerances import float32_tol  # tests/tolerances.py
from underrep_jax import config_schema
from underrep_jax import parallel
from underrep_jax.train import loop
from underrep_jax.train import losses

VOCAB = 64


def _p(init, names):
  return nn.with_logical_partitioning(init, names)


class Dense(nn.Module):
  """Contracts the last `contract` axes of x with a kernel named `names` (in + out axes).

  Params are declared with explicit shapes: flax's DenseGeneral reshapes a boxed kernel
  inside its initializer, which fails under a mesh with several feature axes.
  """
  features: tuple[int, ...]
  names: tuple[str, ...]
  contract: int = 1

  @nn.compact
  def __call__(self, x):
    n_in, n_out = self.contract, len(self.features)
    init = nn.initializers.lecun_normal(in_axis=tuple(range(n_in)),
                                        out_axis=tuple(range(n_in, n_in + n_out)))
    kernel = self.param("kernel", _p(init, self.names), x.shape[x.ndim - n_in:] + self.features)
    bias = self.param("bias", _p(nn.initializers.zeros, self.names[n_in:]), self.features)
    contracted = tuple(range(x.ndim - n_in, x.ndim))
    return jax.lax.dot_general(x, kernel, ((contracted, tuple(range(n_in))), ((), ()))) + bias


def _dense(features, names, contract=1):
  features = (features,) if isinstance(features, int) else tuple(features)
  return Dense(features, names, contract)


def _norm():
  return nn.LayerNorm(scale_init=_p(nn.initializers.ones, ("norm",)),
                      bias_init=_p(nn.initializers.zeros, ("norm",)))


class Attention(nn.Module):
  heads: int
  head_dim: int

  @nn.compact
  def __call__(self, x, kv, mask):
    q = _dense((self.heads, self.head_dim), ("embed", "heads", "kv"))(x)
    k = _dense((self.heads, self.head_dim), ("embed", "heads", "kv"))(kv)
    v = _dense((self.heads, self.head_dim), ("embed", "heads", "kv"))(kv)
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(self.head_dim)
    scores = jnp.where(mask[:, None], scores, -1e9)
    out = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v)
    return _dense(x.shape[-1], ("heads", "kv", "embed"), contract=2)(out)


class Block(nn.Module):
  heads: int
  head_dim: int
  mlp: int
  cross: bool = False

  @nn.compact
  def __call__(self, x, mask, memory=None, cross_mask=None):
    x = x + Attention(self.heads, self.head_dim)(_norm()(x), _norm()(x), mask)
    if self.cross:
      x = x + Attention(self.heads, self.head_dim)(_norm()(x), memory, cross_mask)
    h = nn.gelu(_dense(self.mlp, ("embed", "mlp"))(_norm()(x)))
    h = nn.with_logical_constraint(h, ("batch", "length", "mlp"))
    x = x + _dense(x.shape[-1], ("mlp", "embed"))(h)
    return nn.with_logical_constraint(x, ("batch", "length", "embed"))


def _segments(tokens, segment_ids, positions):
  if segment_ids is None:
    segment_ids = jnp.ones_like(tokens)
  if positions is None:
    positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
  return segment_ids, positions


class Embedder(nn.Module):
  embed: int
  max_len: int

  @nn.compact
  def __call__(self, tokens, positions):
    init = nn.initializers.normal(0.02)
    tok = self.param("tokens", _p(init, ("vocab", "embed")), (VOCAB, self.embed))
    pos = self.param("positions", _p(init, (None, "embed")), (self.max_len, self.embed))
    # One-hot matmuls: tiny tables, and no gathers for the partitioner to rematerialise.
    x = jax.nn.one_hot(tokens, VOCAB) @ tok + jax.nn.one_hot(positions, self.max_len) @ pos
    return nn.with_logical_constraint(x, ("batch", "length", "embed"))


class ToyDecoder(nn.Module):
  """Causal transformer LM; packed sequences attend only within their segment."""
  embed: int = 32
  heads: int = 4
  head_dim: int = 8
  mlp: int = 64
  layers: int = 2
  max_len: int = 32

  @nn.compact
  def __call__(self, tokens, segment_ids=None, positions=None, causal_attention=None):
    segment_ids, positions = _segments(tokens, segment_ids, positions)
    t = tokens.shape[1]
    mask = jnp.tril(jnp.ones((t, t), bool))[None]
    if causal_attention is not None:  # prefix LM: the prefix attends bidirectionally
      prefix = causal_attention.astype(bool)
      mask = mask | (prefix[:, :, None] & prefix[:, None, :])
    mask = mask & (segment_ids[:, :, None] == segment_ids[:, None, :])
    x = Embedder(self.embed, self.max_len)(tokens, positions)
    for _ in range(self.layers):
      x = Block(self.heads, self.head_dim, self.mlp)(x, mask)
    return _dense(VOCAB, ("embed", "vocab"))(_norm()(x))


class ToyEncoderDecoder(nn.Module):
  """Encoder-decoder LM with the EncDecFeatureConverter's packed inputs."""
  embed: int = 32
  heads: int = 4
  head_dim: int = 8
  mlp: int = 64
  max_len: int = 32

  @nn.compact
  def __call__(self, encoder_tokens, decoder_tokens, encoder_segment_ids=None,
               encoder_positions=None, decoder_segment_ids=None, decoder_positions=None):
    es, ep = _segments(encoder_tokens, encoder_segment_ids, encoder_positions)
    ds, dp = _segments(decoder_tokens, decoder_segment_ids, decoder_positions)
    embedder = Embedder(self.embed, self.max_len)
    enc_mask = (es[:, :, None] == es[:, None, :]) & (encoder_tokens > 0)[:, None, :]
    memory = Block(self.heads, self.head_dim, self.mlp)(embedder(encoder_tokens, ep), enc_mask)
    t = decoder_tokens.shape[1]
    dec_mask = jnp.tril(jnp.ones((t, t), bool))[None] & (ds[:, :, None] == ds[:, None, :])
    cross_mask = (ds[:, :, None] == es[:, None, :]) & (encoder_tokens > 0)[:, None, :]
    x = Block(self.heads, self.head_dim, self.mlp, cross=True)(
        embedder(decoder_tokens, dp), dec_mask, memory, cross_mask)
    return _dense(VOCAB, ("embed", "vocab"))(_norm()(x))


def init_fn(model, *example_inputs):
  """`init_params(rng)` for the loop: boxed params from example inputs."""
  return lambda rng: model.init(rng, *example_inputs)["params"]


def numpy_params(model, *example_inputs, seed: int = 0, scale: float = 0.1):
  """Random params of the right shapes without compiling the model's init (fast tests)."""
  rng = np.random.default_rng(seed)
  shapes = nn.unbox(jax.eval_shape(model.init, jax.random.PRNGKey(0), *example_inputs)["params"])
  return jax.tree.map(lambda s: (scale * rng.standard_normal(s.shape)).astype(s.dtype), shapes)


# After 3 AdamW steps (lr <= 3e-3) on another mesh: gradients over <= 256 tokens, forward
# and backward through the 2-deep toy model per step (depth 6), perturb each update at the
# scale of the total movement 3 * lr (1e-6); adding updates to params of ~0.4 rounds once a
# step (rtol 3.6e-6). A wrong or missing gradient all-reduce moves params by ~lr.
PARAMS_ATOL = float32_tol(256, depth=6, scale=3 * 3e-3)
PARAMS_RTOL = float32_tol(1, depth=3)
KEY_BIAS_ATOL = 1e-2  # about 3 steps * lr: see assert_params_close


def assert_params_close(got, want, rtol=PARAMS_RTOL, atol=PARAMS_ATOL):
  """Compares two {path: array} dicts of toy params across meshes or process counts.

  The attention key bias gets lr-sized slack: its true gradient is 0 (softmax ignores a
  shift), so Adam rescales reduction-order noise into steps of about the learning rate.
  """
  assert sorted(got) == sorted(want)
  for name in want:
    key_bias = "['Attention_0']['Dense_1']['bias']" in name
    np.testing.assert_allclose(got[name], want[name], rtol=rtol,
                               atol=KEY_BIAS_ATOL if key_bias else atol, err_msg=name)


def flat_params(params) -> dict[str, np.ndarray]:
  return {jax.tree_util.keystr(k): np.asarray(v)
          for k, v in jax.tree_util.tree_leaves_with_path(params)}


def decoder_batch(index: int, batch_size: int, length: int = 16, packed: bool = True,
                  seed: int = 0) -> dict[str, np.ndarray]:
  """Deterministic packed decoder-only batch number `index` (SeqIO feature names).

  The tokens follow a learnable rule (next = previous + 1 mod V) so losses go down.
  Each row packs two examples: a "prompt" part (loss weight 0) and a "target" part.
  """
  rng = np.random.default_rng([seed, index])
  starts = rng.integers(2, VOCAB, size=(batch_size, 1))
  seq = (starts + np.arange(length + 1)) % (VOCAB - 2) + 2
  inputs, targets = seq[:, :-1].astype(np.int32), seq[:, 1:].astype(np.int32)
  half = length // 2
  segment_ids = np.where(np.arange(length) < half, 1, 2).astype(np.int32)
  segment_ids = np.broadcast_to(segment_ids, (batch_size, length)).copy()
  positions = np.where(np.arange(length) < half, np.arange(length), np.arange(length) - half)
  positions = np.broadcast_to(positions, (batch_size, length)).astype(np.int32).copy()
  prompt = (positions < 3)
  weights = (~prompt).astype(np.int32)
  # The last two positions of every row are padding.
  pad = np.arange(length) >= length - 2
  for a in (inputs, targets, segment_ids, positions, weights):
    a[:, pad] = 0
  batch = {"decoder_input_tokens": inputs, "decoder_target_tokens": targets,
           "decoder_loss_weights": weights}
  if packed:
    batch.update(decoder_segment_ids=segment_ids, decoder_positions=positions)
  return batch


def decoder_batches(batch_size: int, start: int = 0, process_index: int = 0,
                    process_count: int = 1, delay: float = 0.0, **kwargs):
  """`make_batches`-style iterator: this process's rows of global batches start, start+1..."""
  rows = batch_size // process_count
  index = start
  while True:
    if delay:
      time.sleep(delay)
    batch = decoder_batch(index, batch_size, **kwargs)
    yield {k: v[process_index * rows:(process_index + 1) * rows] for k, v in batch.items()}
    index += 1


def toy_config(steps: int = 12, batch_size: int = 8, checkpoint_every: int = 3,
               mesh=(-1, 1, 1), microbatches: int = 1):
  config = ml_collections.ConfigDict()
  config.train = config_schema.train(
      steps=steps, batch_size=batch_size, microbatches=microbatches, log_every=1,
      checkpoint_every=checkpoint_every, keep_checkpoints=3, seed=0, loss_on="targets")
  config.optimizer = config_schema.optimizer(learning_rate=3e-3, schedule="linear",
                                             warmup_steps=2, weight_decay=0.01, b2=0.98)
  config.mesh = config_schema.mesh(shape=tuple(mesh))
  return config


SMALL_DECODER = ToyDecoder(layers=1)
SMALL_TOKENS = np.zeros((1, 16), np.int32)


def train_small_decoder(workdir, steps: int, *, hooks=(), make_batches=None, loss_fn=None,
                        flops_per_token=None, **train_overrides):
  """`loop.train` of the one-layer toy decoder on `decoder_batches(8)`, checkpointing every
  2 steps; its parameters start from numpy (no init compilation, the load_params path)."""
  config = toy_config(steps=steps, checkpoint_every=2)
  config.train.update(train_overrides)
  model, tokens = SMALL_DECODER, SMALL_TOKENS
  return loop.train(
      config, str(workdir), init_params=init_fn(model, tokens),
      loss_fn=loss_fn or losses.token_loss(losses.decoder_only_adapter(model)),
      make_batches=make_batches or (lambda start: decoder_batches(8, start)),
      load_params=lambda shardings: jax.device_put(numpy_params(model, tokens), shardings),
      flops_per_token=flops_per_token, hooks=hooks)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--steps", type=int, default=12)
  parser.add_argument("--checkpoint_every", type=int, default=3)
  parser.add_argument("--batch_size", type=int, default=8)
  parser.add_argument("--mesh", default="-1,1,1")
  parser.add_argument("--delay", type=float, default=0.0, help="seconds per batch")
  parser.add_argument("--init", choices=("model", "numpy"), default="model",
                      help="model: the jitted sharded init; numpy: load_params from host arrays "
                           "(no init compilation)")
  parser.add_argument("--distributed", action="store_true",
                      help="join jax.distributed (UNDERREP_* variables, gloo collectives)")
  args = parser.parse_args(argv)

  if args.distributed:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    parallel.initialize_distributed()

  model = ToyDecoder(layers=1)
  example = decoder_batch(0, 2)
  config = toy_config(args.steps, args.batch_size, args.checkpoint_every,
                      tuple(int(s) for s in args.mesh.split(",")))
  loss_fn = losses.token_loss(losses.decoder_only_adapter(model), config.train.loss_on)

  def load_params(shardings):
    # How a pretrained model is loaded on every host: each host builds the same numpy
    # params and fills in the shards of its own devices.
    host = numpy_params(model, example["decoder_input_tokens"])
    return jax.tree.map(lambda x, s: jax.make_array_from_callback(x.shape, s, lambda i: x[i]),
                        host, shardings)

  result = loop.train(
      config, args.workdir,
      init_params=init_fn(model, example["decoder_input_tokens"]), loss_fn=loss_fn,
      make_batches=lambda start: decoder_batches(
          args.batch_size, start, jax.process_index(), jax.process_count(), args.delay),
      load_params=load_params if args.init == "numpy" else None)
  flat = flat_params(jax.tree.map(parallel.global_to_host_local, result.state.params))
  if jax.process_index() == 0:
    np.savez(os.path.join(args.workdir, "final_params.npz"), **flat)
  loss = result.last_metrics.get("loss")
  print(f"done step={result.step} preempted={result.preempted} loss={loss}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
