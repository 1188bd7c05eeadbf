"""Adam (Kingma & Ba, 2015), the optimiser of the training loop, without torch.optim.

`torch.optim.Optimizer.__init__` imports `torch._dynamo` (the compiler front end) on first
use, which takes about 2 s of a 2-core machine: a tenth of training a small file. This
class does the same arithmetic as torch's single-tensor Adam (the one `torch.optim.Adam`
runs on CPU tensors; no weight decay, no amsgrad), op for op, so a CPU run gives the same
weights bit for bit (tests/test_recipe.py compares the two). Its state has torch's names
and layout (per parameter index: `step`, a float32 tensor on the CPU, `exp_avg`,
`exp_avg_sq`), so resume files written by either load in the other.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class Adam:
    """Adam over `params` with betas (0.9, 0.999) and eps 1e-8, as torch's defaults.

    The loop sets the learning rate of each step in `param_groups[0]["lr"]`.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.params = list(params)
        self.param_groups = [{"params": self.params, "lr": lr}]
        self.betas, self.eps = betas, eps
        self.state: dict[int, dict[str, torch.Tensor]] = {}  # parameter index -> slots

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = self.betas
        lr = self.param_groups[0]["lr"]
        for index, param in enumerate(self.params):
            grad = param.grad
            if grad is None:
                continue
            slots = self.state.get(index)
            if slots is None:
                slots = self.state[index] = {
                    "step": torch.tensor(0.0, dtype=torch.float32),
                    "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(param, memory_format=torch.preserve_format),
                }
            step_t, exp_avg, exp_avg_sq = slots["step"], slots["exp_avg"], slots["exp_avg_sq"]
            step_t += 1
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            step = step_t.item()
            bias_correction1 = 1 - beta1 ** step
            bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
            param.addcdiv_(exp_avg, denom, value=-(lr / bias_correction1))

    def state_slots(self) -> dict[int, dict[str, torch.Tensor]]:
        """The moments and step counts by parameter index (the parameters stepped so far)."""
        return self.state

    def load_slots(self, slots: dict[int, dict[str, torch.Tensor]]) -> None:
        """Put back what `state_slots` returned, on each parameter's device."""
        expected = {"step", "exp_avg", "exp_avg_sq"}
        loaded: dict[int, dict[str, torch.Tensor]] = {}
        for index, entry in slots.items():
            if not 0 <= index < len(self.params):
                raise ValueError(f"optimizer state for parameter {index}; the model has {len(self.params)}")
            if set(entry) != expected:
                raise KeyError(f"optimizer state {index} has {sorted(entry)}, not {sorted(expected)}")
            param = self.params[index]
            for key in ("exp_avg", "exp_avg_sq"):
                if entry[key].shape != param.shape:
                    raise ValueError(f"optimizer state {index}.{key} has shape {tuple(entry[key].shape)}, "
                                     f"the parameter {tuple(param.shape)}")
            loaded[index] = {"step": entry["step"].to("cpu", torch.float32).clone(),
                             "exp_avg": entry["exp_avg"].to(param.device, param.dtype).clone(),
                             "exp_avg_sq": entry["exp_avg_sq"].to(param.device, param.dtype).clone()}
        self.state = loaded
