"""ResNet-18 (He et al., 2016), written here so the package needs no torchvision.

The layout is torchvision's ``resnet18`` without its ``fc`` layer: a 7x7/2 stem, 3x3/2
max-pool, four stages of two BasicBlocks (64, 128, 256, 512 channels), global average
pooling. With 3 input channels it has 11,176,512 parameters (torchvision's 11,689,512
minus the 513,000 of the 1000-way ``fc``).

Two encoders are built on it, as in OGM-GE's audio-visual networks (trained from scratch):

* :class:`SpectrogramResNet` — input ``[B, 1, F, T]`` (a log-magnitude spectrogram,
  ``[B, F, T]`` is accepted too), one input channel.
* :class:`FramesResNet` — input ``[B, T, 3, H, W]``: every frame goes through the conv
  trunk, then the feature maps are averaged over time *and* space (OGM-GE reshapes the
  trunk output to ``[B, C, T, h, w]`` and applies ``adaptive_avg_pool3d(1)``; averaging
  the per-frame pooled features is the same number).

``width`` scales the channel counts (64 is the standard network; 8 or 16 make tiny
models for tests and CPU demos). ``out_dim = 8 * width``.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..errors import InvalidArgumentError, ModelError

__all__ = ["BasicBlock", "ResNet18Trunk", "SpectrogramResNet", "FramesResNet"]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""

    expansion = 1

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18Trunk(nn.Module):
    """The ResNet-18 convolutional trunk: ``[N, in_channels, H, W] -> [N, 8*width, h, w]``."""

    def __init__(self, in_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        if in_channels < 1 or width < 1:
            raise InvalidArgumentError(f"in_channels and width must be >= 1, got {in_channels}, {width}")
        self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        chans = [width, 2 * width, 4 * width, 8 * width]
        layers, in_ch = [], width
        for i, ch in enumerate(chans):
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(BasicBlock(in_ch, ch, stride), BasicBlock(ch, ch, 1)))
            in_ch = ch
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.out_channels = chans[-1]
        # torchvision's initialisation: Kaiming-normal convs (fan_out), BN weight 1, bias 0.
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(mod, nn.BatchNorm2d):
                nn.init.ones_(mod.weight)
                nn.init.zeros_(mod.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class SpectrogramResNet(nn.Module):
    """ResNet-18 on 1-channel spectrograms ``[B, 1, F, T]`` -> ``[B, 8*width]``."""

    def __init__(self, in_channels: int = 1, width: int = 64) -> None:
        super().__init__()
        self.trunk = ResNet18Trunk(in_channels, width)
        self.in_channels = in_channels
        self.out_dim = self.trunk.out_channels

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 3 and self.in_channels == 1:
            x = x.unsqueeze(1)
        if x.ndim != 4:
            raise ModelError(f"SpectrogramResNet expects [B, {self.in_channels}, F, T], got shape {tuple(x.shape)}")
        return self.trunk(x).mean(dim=(2, 3))


class FramesResNet(nn.Module):
    """ResNet-18 on video frames ``[B, T, 3, H, W]`` -> ``[B, 8*width]`` (mean over T, h, w).

    A single image ``[B, 3, H, W]`` is treated as ``T = 1``.
    """

    def __init__(self, in_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        self.trunk = ResNet18Trunk(in_channels, width)
        self.in_channels = in_channels
        self.out_dim = self.trunk.out_channels

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 4:
            x = x.unsqueeze(1)
        if x.ndim != 5:
            raise ModelError(f"FramesResNet expects [B, T, {self.in_channels}, H, W], got shape {tuple(x.shape)}")
        b, t = x.shape[:2]
        maps = self.trunk(x.reshape(b * t, *x.shape[2:]))  # [B*T, C, h, w]
        return maps.reshape(b, t, maps.shape[1], -1).mean(dim=(1, 3))
