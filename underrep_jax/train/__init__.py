"""Training: train state, jitted steps, the generic loop, Orbax checkpoints, losses, metrics.

A job wires a model into the loop like this:

    model = models.build("bloom", hf_config, dtype="bfloat16", remat=True)
    loss_fn = losses.token_loss(losses.decoder_only_adapter(model), config.train.loss_on)
    loop.train(config, workdir, init_params=models.make_init_fn(model), loss_fn=loss_fn,
               make_batches=make_batches, flops_per_token=...)

See README.md in this directory.
"""

from underrep_jax.train import checkpointing
from underrep_jax.train import losses
from underrep_jax.train import loop
from underrep_jax.train import metrics
from underrep_jax.train import optimizer
from underrep_jax.train import state
from underrep_jax.train import steps
from underrep_jax.train.loop import NonFiniteLossError, TrainResult, train

__all__ = ["checkpointing", "losses", "loop", "metrics", "optimizer", "state", "steps",
           "NonFiniteLossError", "TrainResult", "train"]
