"""A small deep network with optional shortcut connections (notebook 03)."""

import torch
from torch import nn

from .feed_forward import GELU

__all__ = ["ExampleDeepNeuralNetwork", "layer_gradient_means"]


class ExampleDeepNeuralNetwork(nn.Module):
    """A stack of Linear + GELU layers that can add each layer's input to its output."""

    def __init__(self, layer_sizes: list[int], use_shortcut: bool):
        super().__init__()
        sizes = list(layer_sizes) if isinstance(layer_sizes, (list, tuple)) else None
        if not sizes or len(sizes) < 2 or any(isinstance(n, bool) or not isinstance(n, int) or n <= 0 for n in sizes):
            raise ValueError(
                f"layer_sizes must list at least two positive ints (input, ..., output), got {layer_sizes!r}"
            )
        if not isinstance(use_shortcut, bool):
            raise TypeError(f"use_shortcut must be True or False, got {use_shortcut!r}")
        self.use_shortcut = use_shortcut
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Linear(n_in, n_out), GELU())
            for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)  # (in, out) per layer
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_in = self.layers[0][0].in_features
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            got = f"dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise TypeError(f"ExampleDeepNeuralNetwork expects a float tensor, got {got}")
        if x.dim() == 0 or x.shape[-1] != n_in:
            raise ValueError(f"ExampleDeepNeuralNetwork expects shape (..., {n_in}), got {tuple(x.shape)}")
        for layer in self.layers:
            out = layer(x)
            # a shortcut needs matching shapes: output = F(x) + x
            x = x + out if self.use_shortcut and x.shape == out.shape else out
        return x


def layer_gradient_means(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Run one forward/backward pass with MSE loss; return the mean |grad| of each weight matrix."""
    for name, value in (("x", x), ("target", target)):
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            got = f"dtype {value.dtype}" if isinstance(value, torch.Tensor) else type(value).__name__
            raise TypeError(f"layer_gradient_means: {name} must be a float tensor, got {got}")
        if not value.isfinite().all():
            raise ValueError(f"layer_gradient_means: {name} holds NaN or inf, so every gradient would be NaN")
    model.zero_grad()
    output = model(x)
    if output.shape != target.shape:
        # mse_loss would broadcast the two and only warn: the gradients would belong to another problem
        raise ValueError(
            f"layer_gradient_means: target has shape {tuple(target.shape)}, the model's output {tuple(output.shape)}"
        )
    loss = nn.functional.mse_loss(output, target)
    loss.backward()
    missing = [name for name, p in model.named_parameters() if name.endswith("weight") and p.grad is None]
    if missing:
        raise ValueError(f"layer_gradient_means: no gradient reached {', '.join(missing)}; is requires_grad off?")
    return {name: param.grad.abs().mean().item() for name, param in model.named_parameters() if name.endswith("weight")}
