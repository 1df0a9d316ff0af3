"""MLP encoder for feature inputs."""

from __future__ import annotations

from torch import Tensor, nn


class MLPEncoder(nn.Module):
    """``in_dim -> hidden -> ... -> out_dim`` with ReLU; flattens its input first.

    ``out_dim`` is the feature width the heads see (``self.out_dim``).
    """

    def __init__(self, in_dim: int, hidden: tuple[int, ...] = (64,), out_dim: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers += [nn.Linear(width, out_dim), nn.ReLU()]
        self.net = nn.Sequential(*layers)
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
