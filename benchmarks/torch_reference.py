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
