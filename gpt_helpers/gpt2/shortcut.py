"""A small deep network with optional shortcut connections (notebook 03)."""

import torch
from torch import nn

from .feed_forward import GELU

__all__ = ["ExampleDeepNeuralNetwork", "layer_gradient_means"]


class ExampleDeepNeuralNetwork(nn.Module):
    """A stack of Linear + GELU layers that can add each layer's input to its output."""

    def __init__(self, layer_sizes: list[int], use_shortcut: bool):
        super().__init__()
        self.use_shortcut = use_shortcut
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Linear(n_in, n_out), GELU())
            for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:], strict=True)  # (in, out) per layer
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            out = layer(x)
            # a shortcut needs matching shapes: output = F(x) + x
            x = x + out if self.use_shortcut and x.shape == out.shape else out
        return x


def layer_gradient_means(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Run one forward/backward pass with MSE loss; return the mean |grad| of each weight matrix."""
    model.zero_grad()
    loss = nn.functional.mse_loss(model(x), target)
    loss.backward()
    return {name: param.grad.abs().mean().item() for name, param in model.named_parameters() if name.endswith("weight")}
