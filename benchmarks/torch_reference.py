"""PyTorch counterparts shared by the benchmarks."""

import torch


def adamw(model: torch.nn.Module, hparams: dict) -> torch.optim.AdamW:
  """torch AdamW with our decay mask (no decay on vectors) and the same hyper-parameters."""
  decay = [p for p in model.parameters() if p.ndim >= 2]
  no_decay = [p for p in model.parameters() if p.ndim < 2]
  return torch.optim.AdamW([{"params": decay, "weight_decay": hparams["weight_decay"]},
                            {"params": no_decay, "weight_decay": 0.0}],
                           lr=hparams["learning_rate"], betas=(hparams["b1"], hparams["b2"]),
                           eps=hparams["eps"])


def train_step_runner(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                      loss_fn, clip_norm: float):
  """A call runs one eager step (loss_fn(model) -> loss, backward, clip, step) and
  returns the loss, the counterpart of our jitted train step."""

  def run() -> float:
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    optimizer.step()
    return float(loss.detach())

  return run


def part_runners(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn,
                 clip_norm: float) -> dict:
  """The eager step's parts, as our_step.make_part_runners: forward (no graph kept),
  forward and backward, and clipping with the optimizer's step (from the last gradients)."""

  def forward():
    with torch.no_grad():
      loss_fn(model)

  def forward_backward():
    model.zero_grad(set_to_none=True)
    loss_fn(model).backward()

  def update():
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    optimizer.step()

  forward_backward()  # gradients for the optimizer part to use
  return {"forward": forward, "forward+backward": forward_backward, "optimizer": update}
