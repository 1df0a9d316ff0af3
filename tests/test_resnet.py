"""ResNet-18 encoders: standard parameter count, both input kinds, registry defaults."""

import torch

from mmenv.datasets import ModalitySpec
from mmenv.models import build_encoder
from mmenv.models.resnet import FramesResNet, ResNet18Trunk, SpectrogramResNet


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_standard_parameter_count():
    # torchvision resnet18 has 11,689,512 parameters; without its 512x1000 fc: 11,176,512.
    assert n_params(ResNet18Trunk(3, 64)) == 11_176_512
    # One input channel: conv1 shrinks from 64*3*49 to 64*1*49 weights.
    assert n_params(SpectrogramResNet(1, 64)) == 11_176_512 - 64 * 2 * 49
    assert n_params(FramesResNet(3, 64)) == 11_176_512


def test_spectrogram_and_frames_shapes():
    torch.manual_seed(0)
    spec = SpectrogramResNet(width=8)
    assert spec.out_dim == 64
    assert spec(torch.randn(2, 1, 33, 20)).shape == (2, 64)
    assert spec(torch.randn(2, 33, 20)).shape == (2, 64)  # channel dim added
    frames = FramesResNet(width=8).eval()
    x = torch.randn(2, 3, 3, 32, 32)
    out = frames(x)
    assert out.shape == (2, 64)
    # Pooled over time as in OGM-GE: the same as averaging each frame's pooled features.
    per_frame = torch.stack([frames(x[:, t]) for t in range(3)], dim=1).mean(1)
    torch.testing.assert_close(out, per_frame, rtol=1e-5, atol=1e-6)
    # Frame order does not matter for a temporal mean.
    torch.testing.assert_close(frames(x.flip(1)), out, rtol=1e-5, atol=1e-6)


def test_registry_picks_resnet_by_kind_and_name_overrides():
    spec = build_encoder(ModalitySpec("audio", (1, 33, 20), "spectrogram"), width=8)
    assert isinstance(spec, SpectrogramResNet) and spec.out_dim == 64
    frames = build_encoder(ModalitySpec("visual", (2, 3, 32, 32), "frames"), width=8)
    assert isinstance(frames, FramesResNet)
    mlp = build_encoder(ModalitySpec("audio", (1, 4, 5), "spectrogram"), name="mlp")
    assert mlp(torch.randn(3, 1, 4, 5)).shape == (3, mlp.out_dim)


def test_full_size_inputs_map_to_the_expected_feature_maps():
    # CREMA-D's 257 x 188 spectrogram: /2 (stem), /2 (max-pool), /2 three times ->
    # 9 x 6 maps; a 224 x 224 frame -> 7 x 7, as in torchvision's ResNet-18.
    trunk = ResNet18Trunk(1, width=4).eval()
    with torch.no_grad():
        assert trunk(torch.zeros(1, 1, 257, 188)).shape == (1, 32, 9, 6)
        assert ResNet18Trunk(3, width=4).eval()(torch.zeros(1, 3, 224, 224)).shape == (1, 32, 7, 7)
        assert SpectrogramResNet(width=4)(torch.zeros(2, 1, 257, 188)).shape == (2, 32)
        assert FramesResNet(width=4)(torch.zeros(1, 3, 3, 224, 224)).shape == (1, 32)
