"""Raw audio-visual loaders (CREMA-D, Kinetics-Sounds) on tiny fixtures written here."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mmenv
from mmenv.datasets import DatasetError, make_dataset
from mmenv.datasets.crema_d import CREMA_D_CLASSES
from mmenv.datasets.media import (
    AudioConfig,
    log_spectrogram,
    random_resized_crop_box,
    read_wav,
    resample_linear,
)

# Small decoding settings so a test runs in a fraction of a second.
SMALL = dict(sample_rate=8000, seconds=0.5, n_fft=64, hop_length=32, frame_size=16)
SMALL_SPEC = (1, 33, 1 + 4000 // 32)


def write_wav(path: Path, seconds: float = 0.2, rate: int = 8000, freq: float = 440.0, width: int = 2) -> None:
    t = np.arange(int(seconds * rate)) / rate
    x = 0.5 * np.sin(2 * np.pi * freq * t)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes((x * 32767).astype("<i2").tobytes() if width == 2 else ((x + 1) * 127.5).astype(np.uint8).tobytes())


def write_jpeg(path: Path, value: int, size: int = 32) -> None:
    rng = np.random.default_rng(value)
    arr = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    arr[..., 0] = value % 256
    Image.fromarray(arr).save(path, quality=90)


def make_av_tree(root: Path, audio_dir: str, frames_dir: str, train: list[tuple[str, str]],
                 test: list[tuple[str, str]], frames_per_clip: int = 2) -> Path:
    (root / audio_dir).mkdir(parents=True)
    (root / frames_dir).mkdir()
    for k, (clip, _) in enumerate(train + test):
        write_wav(root / audio_dir / f"{clip}.wav", freq=200.0 + 50 * k)
        (root / frames_dir / clip).mkdir()
        for j in range(frames_per_clip):
            write_jpeg(root / frames_dir / clip / f"frame_{j:05d}.jpg", 10 * k + j)
    (root / "train.csv").write_text("".join(f"{c},{lab}\n" for c, lab in train))
    (root / "test.csv").write_text("".join(f"{c},{lab}\n" for c, lab in test))
    return root


@pytest.fixture
def crema(tmp_path: Path) -> Path:
    train = [(f"10{i:02d}_IEO_{CREMA_D_CLASSES[i % 6]}_HI", CREMA_D_CLASSES[i % 6]) for i in range(12)]
    test = [(f"20{i:02d}_IEO_{CREMA_D_CLASSES[i % 6]}_LO", CREMA_D_CLASSES[i % 6]) for i in range(6)]
    return make_av_tree(tmp_path / "crema", "AudioWAV", "Image-01-FPS", train, test)


KS_CLASSES = ["playing drums", "dog barking", "chainsaw"]


@pytest.fixture
def kinetics(tmp_path: Path) -> Path:
    train = [(f"vid{i:03d}", KS_CLASSES[i % 3]) for i in range(9)]
    test = [(f"tst{i:03d}", KS_CLASSES[i % 3]) for i in range(3)]
    return make_av_tree(tmp_path / "ks", "audio", "visual", train, test, frames_per_clip=4)


# --------------------------------------------------------------------------- pure functions
def test_default_spectrogram_shape_257x188(tmp_path):
    write_wav(tmp_path / "a.wav", seconds=0.2, rate=22050)
    x, rate = read_wav(tmp_path / "a.wav")
    assert rate == 22050 and x.shape == (4410,) and np.abs(x).max() <= 1.0
    spec = log_spectrogram(x, AudioConfig())
    assert spec.shape == (1, 257, 188) == AudioConfig().shape
    assert torch.isfinite(spec).all() and spec.min() >= np.log(1e-7) - 1e-4


def test_resample_and_8bit(tmp_path):
    write_wav(tmp_path / "b.wav", seconds=0.2, rate=11025, width=1)
    x, rate = read_wav(tmp_path / "b.wav")
    assert rate == 11025 and x.shape == (2205,) and 0.4 < np.abs(x).max() <= 1.0
    y = resample_linear(x, rate, 22050)
    assert y.shape == (4410,)
    np.testing.assert_allclose(y[::2], x, atol=1e-6)  # every other output sample is an input sample


def test_random_resized_crop_box_within_image():
    rng = np.random.default_rng(0)
    for _ in range(200):
        left, top, w, h = random_resized_crop_box(40, 30, rng)
        assert 0 <= left and 0 <= top and 0 < w and 0 < h and left + w <= 40 and top + h <= 30


# --------------------------------------------------------------------------- CREMA-D
def test_crema_d_shapes_labels_class_order(crema):
    ds = make_dataset("crema-d", root=crema, val_fraction=0.5, **SMALL)
    assert ds.name == "crema-d" and ds.num_classes == 6
    assert list(ds.class_names) == ["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"]
    assert ds.modality_names == ("audio", "visual")
    assert ds.modalities[0].shape == SMALL_SPEC and ds.modalities[0].kind == "spectrogram"
    assert ds.modalities[1].shape == (1, 3, 16, 16) and ds.modalities[1].kind == "frames"
    # 12 train rows, one per class held out for validation (stratified, fixed).
    assert (len(ds.train), len(ds.val), len(ds.test)) == (6, 6, 6)
    assert sorted(ds.val.labels.tolist()) == list(range(6))
    assert ds.test.labels.tolist() == [0, 1, 2, 3, 4, 5]
    held = {c.clip_id for c in ds.val.clips}
    assert not held & {c.clip_id for c in ds.train.clips}
    idx = torch.tensor([0, 3, 3])
    a = ds.train.gather("audio", idx)
    v = ds.train.gather("visual", idx)
    assert a.shape == (3, *SMALL_SPEC) and v.shape == (3, 1, 3, 16, 16)
    torch.testing.assert_close(a[1], a[2])  # spectrograms are deterministic
    assert not torch.equal(v[1], v[2])  # training crops differ per draw
    te = ds.test.gather("visual", torch.tensor([1, 1]))
    torch.testing.assert_close(te[0], te[1])  # evaluation transform is deterministic
    # ImageNet normalisation: a resized frame's red channel equals (value/255 - 0.485)/0.229.
    red = (10 * 13 + 1) % 256 / 255.0  # test clip 1 is the 14th clip; its middle frame is frame 1
    assert abs(float(te[0, 0, 0].mean()) - (red - 0.485) / 0.229) < 0.05


def test_reseed_and_workers_give_same_batches(crema):
    ds = make_dataset("crema-d", root=crema, val_fraction=0.0, **SMALL)
    idx = torch.arange(6)
    ds.train.reseed(7)
    first = ds.train.gather("visual", idx)
    ds.train.reseed(7)
    torch.testing.assert_close(ds.train.gather("visual", idx), first)
    pooled = make_dataset("crema-d", root=crema, val_fraction=0.0, num_workers=2, **SMALL)
    pooled.train.reseed(7)
    torch.testing.assert_close(pooled.train.gather("visual", idx), first)
    torch.testing.assert_close(pooled.train.gather("audio", idx), ds.train.gather("audio", idx))


def test_spectrogram_disk_cache(crema, tmp_path):
    cache = tmp_path / "cache"
    ds = make_dataset("crema-d", root=crema, val_fraction=0.0, cache_dir=cache, **SMALL)
    before = ds.test.gather("audio", torch.tensor([0]))
    files = sorted(cache.glob("*.npy"))
    assert len(files) == 1 and "n64_h32" in files[0].name
    # A fresh data set reads the cached spectrogram instead of the (now changed) WAV.
    clip = ds.test.clips[0]
    write_wav(clip.audio, freq=3000.0)
    again = make_dataset("crema-d", root=crema, val_fraction=0.0, cache_dir=cache, **SMALL)
    torch.testing.assert_close(again.test.gather("audio", torch.tensor([0])), before)
    fresh = make_dataset("crema-d", root=crema, val_fraction=0.0, **SMALL)
    assert not torch.equal(fresh.test.gather("audio", torch.tensor([0])), before)


def test_crema_d_default_size_one_clip(crema):
    ds = make_dataset("crema-d", root=crema, val_fraction=0.0)
    assert ds.modalities[0].shape == (1, 257, 188)
    assert ds.test.gather("audio", torch.tensor([0])).shape == (1, 1, 257, 188)
    assert ds.train.gather("visual", torch.tensor([0])).shape == (1, 1, 3, 224, 224)


def test_crema_d_env_one_epoch(crema):
    ds = make_dataset("crema-d", root=crema, val_fraction=0.5, **SMALL)
    kw = {"encoder_kwargs": {"audio": {"width": 4}, "visual": {"width": 4}}}
    env = mmenv.DUSEnv(dataset=ds, epochs=1, batch_budget=4, learner_kwargs=kw, eval_batch_size=8)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2,)
    _, reward, terminated, _, info = env.step(env.uniform_action())
    assert terminated and np.isfinite(reward)
    assert info["iteration"] == 3  # ceil(6 train clips * 2 modalities / 4)
    assert 0.0 <= info["test"]["fused"]["accuracy"] <= 1.0


# --------------------------------------------------------------------------- Kinetics-Sounds
def test_kinetics_sounds_layout(kinetics):
    ds = make_dataset("kinetics-sounds", root=kinetics, val_fraction=0.0, **SMALL)
    assert list(ds.class_names) == sorted(KS_CLASSES) and ds.num_classes == 3
    assert ds.modalities[1].shape == (3, 3, 16, 16)
    assert ds.train.labels.tolist() == [sorted(KS_CLASSES).index(KS_CLASSES[i % 3]) for i in range(9)]
    assert ds.train.gather("visual", torch.tensor([0, 1])).shape == (2, 3, 3, 16, 16)
    assert "31" in ds.info["note"]
    pinned = make_dataset("kinetics-sounds", root=kinetics, classes=KS_CLASSES, val_fraction=0.0, **SMALL)
    assert list(pinned.class_names) == KS_CLASSES and pinned.train.labels[:3].tolist() == [0, 1, 2]
    kw = {"encoder_kwargs": {"audio": {"width": 4}, "visual": {"width": 4}}}
    env = mmenv.DUSEnv(dataset=ds, epochs=1, batch_budget=6, learner_kwargs=kw)
    env.reset(seed=1)
    assert env.step(env.uniform_action())[2]


# --------------------------------------------------------------------------- bad input
def test_missing_directories(crema, tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        make_dataset("crema-d", root=tmp_path / "nowhere")
    (crema / "AudioWAV").rename(crema / "Audio")
    with pytest.raises(DatasetError, match="audio folder .*AudioWAV does not exist"):
        make_dataset("crema-d", root=crema)
    (crema / "test.csv").unlink()
    with pytest.raises(DatasetError, match="label list not found: .*test.csv"):
        make_dataset("crema-d", root=crema, audio_dir="Audio")


def test_listed_but_absent_files(crema):
    first = (crema / "train.csv").read_text().splitlines()[0].split(",")[0]
    (crema / "AudioWAV" / f"{first}.wav").unlink()
    with pytest.raises(DatasetError, match=rf"train.csv, row 1: clip '{first}' is listed but its audio file"):
        make_dataset("crema-d", root=crema)
    write_wav(crema / "AudioWAV" / f"{first}.wav")
    for f in (crema / "Image-01-FPS" / first).iterdir():
        f.unlink()
    (crema / "Image-01-FPS" / first).rmdir()
    with pytest.raises(DatasetError, match=r"row 1: .*frame folder .* does not exist"):
        make_dataset("crema-d", root=crema)


def test_unknown_label(crema):
    with open(crema / "test.csv", "a") as f:
        f.write("3000_XYZ,CALM\n")
    with pytest.raises(DatasetError, match=r"test.csv, row 7: unknown label 'CALM'"):
        make_dataset("crema-d", root=crema)


def test_truncated_and_unreadable_wav(crema):
    ds = make_dataset("crema-d", root=crema, val_fraction=0.0, **SMALL)
    clip = ds.test.clips[2]
    data = clip.audio.read_bytes()
    clip.audio.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=rf"{clip.clip_id}\.wav is truncated"):
        ds.test.gather("audio", torch.tensor([2]))
    clip.audio.write_bytes(b"not a wav file at all")
    with pytest.raises(DatasetError, match=rf"cannot read WAV file .*{clip.clip_id}\.wav"):
        ds.test.gather("audio", torch.tensor([2]))


def test_truncated_and_unreadable_jpeg(crema):
    ds = make_dataset("crema-d", root=crema, val_fraction=0.0, **SMALL)
    clip = ds.test.clips[0]
    frame = clip.frames[1]  # the middle frame the test transform reads
    data = frame.read_bytes()
    frame.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=rf"cannot decode image .*{frame.name}"):
        ds.test.gather("visual", torch.tensor([0]))
    frame.write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=rf"cannot decode image .*{frame.name}"):
        ds.test.gather("visual", torch.tensor([0]))


def test_worker_errors_name_the_file(crema):
    ds = make_dataset("crema-d", root=crema, val_fraction=0.0, num_workers=2, **SMALL)
    clip = ds.test.clips[1]
    clip.audio.write_bytes(b"RIFF")
    with pytest.raises(DatasetError, match=rf"{clip.clip_id}\.wav"):
        ds.test.gather("audio", torch.arange(6))


def test_episode_is_a_function_of_the_seed(crema):
    # Two episodes of one environment with the same seed: the augmentation generator is
    # restarted at reset, so the second episode repeats the first exactly.
    kw = {"encoder_kwargs": {"audio": {"width": 4}, "visual": {"width": 4}}}
    ds = make_dataset("crema-d", root=crema, val_fraction=0.0, memory_cache=False, **SMALL)
    env = mmenv.DUSEnv(dataset=ds, epochs=1, batch_budget=6, iters_per_epoch=2, learner_kwargs=kw)

    def run(seed):
        env.reset(seed=seed)
        obs, _, _, _, info = env.step(env.uniform_action())
        return obs, info["train_loss"]["total"]

    obs_a, loss_a = run(3)
    obs_b, loss_b = run(3)
    np.testing.assert_array_equal(obs_a, obs_b)
    assert loss_a == loss_b
