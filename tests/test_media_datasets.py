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


# --------------------------------------------------------------------------- review: formats, cache, order
def wav_bytes(samples: np.ndarray, rate: int, kind: str, extensible: bool = False) -> bytes:
    """A WAV file holding ``samples`` ``[n, channels]`` in [-1, 1), written byte by byte."""
    import struct

    n, ch = samples.shape
    if kind == "pcm8":
        body, width, tag = np.round(samples * 128 + 128).clip(0, 255).astype(np.uint8).tobytes(), 1, 1
    elif kind == "pcm16":
        body, width, tag = np.round(samples * 32768).astype("<i2").tobytes(), 2, 1
    elif kind == "pcm24":
        v = np.round(samples * (1 << 23)).astype("<i4").reshape(-1)
        body = np.stack([v & 255, (v >> 8) & 255, (v >> 16) & 255], 1).astype(np.uint8).tobytes()
        width, tag = 3, 1
    elif kind == "float32":
        body, width, tag = samples.astype("<f4").tobytes(), 4, 3
    else:
        raise ValueError(kind)
    fmt = struct.pack("<HHIIHH", 0xFFFE if extensible else tag, ch, rate, rate * ch * width, ch * width, 8 * width)
    if extensible:  # cbSize, valid bits, channel mask, SubFormat GUID (format tag + fixed tail)
        fmt += struct.pack("<HHI", 22, 8 * width, 3) + struct.pack("<H", tag) + bytes.fromhex("000000001000800000aa00389b71")
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"LIST" + struct.pack("<I", 3) + b"abc\x00"  # an odd-sized chunk to skip (padded)
    chunks += b"data" + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


@pytest.mark.parametrize("kind,extensible,tol", [
    ("pcm8", False, 1 / 128), ("pcm16", False, 1e-4), ("pcm24", False, 1e-6), ("pcm24", True, 1e-6),
    ("pcm16", True, 1e-4), ("float32", False, 1e-7), ("float32", True, 1e-7),
])
def test_wav_sample_formats_stereo(tmp_path, kind, extensible, tol):
    # ffmpeg and sox write 24-bit and multichannel audio as WAVE_FORMAT_EXTENSIBLE, and
    # float WAVs are common; every one must read as the mean of its channels.
    t = np.arange(400) / 8000
    left, right = 0.5 * np.sin(2 * np.pi * 300 * t), 0.25 * np.cos(2 * np.pi * 700 * t)
    path = tmp_path / "s.wav"
    path.write_bytes(wav_bytes(np.stack([left, right], 1), 8000, kind, extensible))
    x, rate = read_wav(path)
    assert rate == 8000 and x.dtype == np.float32 and x.shape == (400,)
    np.testing.assert_allclose(x, (left + right) / 2, atol=tol)


def test_wav_streamed_without_sizes(tmp_path):
    # A WAV written to a pipe (e.g. by ffmpeg) has 0 or 0xFFFFFFFF as its data size:
    # the audio is the rest of the file.
    x = 0.5 * np.sin(np.arange(300) / 7.0)[:, None]
    for size in (0, 0xFFFFFFFF):
        data = bytearray(wav_bytes(x, 8000, "pcm16"))
        at = data.index(b"data") + 4
        data[at:at + 4] = size.to_bytes(4, "little")
        (tmp_path / "p.wav").write_bytes(bytes(data))
        y, _ = read_wav(tmp_path / "p.wav")
        np.testing.assert_allclose(y, x[:, 0], atol=1e-4)


def test_wav_unsupported_and_headerless(tmp_path):
    path = tmp_path / "a.wav"
    data = bytearray(wav_bytes(np.zeros((10, 1)), 8000, "pcm16"))
    data[20:22] = (0x0055).to_bytes(2, "little")  # MPEG layer 3 inside a WAV
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"a\.wav has an unsupported sample format \(format tag 0x0055"):
        read_wav(path)
    path.write_bytes(wav_bytes(np.zeros((10, 1)), 8000, "pcm16")[:40])  # header only
    with pytest.raises(DatasetError, match=r"a\.wav is truncated"):
        read_wav(path)


def write_jpeg_mode(path: Path, mode: str, value: int = 128, size: int = 24) -> None:
    channels = {"L": 1, "CMYK": 4}[mode]
    arr = np.full((size, size, channels), value, dtype=np.uint8).squeeze(-1) if channels == 1 else \
        np.zeros((size, size, 4), dtype=np.uint8)
    Image.fromarray(arr, mode=mode).save(path, quality=95)


def test_grayscale_and_cmyk_frames_become_rgb(crema):
    ds = make_dataset("crema-d", root=crema, val_fraction=0.0, **SMALL)
    clip = ds.test.clips[0]
    for f in clip.frames:
        write_jpeg_mode(f, "L", value=128)
    gray = ds.test.gather("visual", torch.tensor([0]))
    assert gray.shape == (1, 1, 3, 16, 16)
    for c in range(3):  # one grey level per pixel, normalised per channel
        expected = (128 / 255 - mmenv.datasets.media.IMAGENET_MEAN[c]) / mmenv.datasets.media.IMAGENET_STD[c]
        assert abs(float(gray[0, 0, c].mean()) - expected) < 0.02
    for f in clip.frames:
        write_jpeg_mode(f, "CMYK")  # no ink: white
    cmyk = ds.test.gather("visual", torch.tensor([0]))
    white = (1 - torch.tensor(mmenv.datasets.media.IMAGENET_MEAN)) / torch.tensor(mmenv.datasets.media.IMAGENET_STD)
    torch.testing.assert_close(cmyk[0, 0].mean(dim=(1, 2)), white, atol=0.03, rtol=0)
    assert ds.train.gather("visual", torch.arange(len(ds.train))).shape[2] == 3


def test_fewer_frames_than_requested(kinetics):
    # Every clip has 4 frames; a clip with a single frame repeats it (3 frames asked).
    ds = make_dataset("kinetics-sounds", root=kinetics, val_fraction=0.0, **SMALL)
    clip = ds.test.clips[0]
    for f in clip.frames[1:]:
        f.unlink()
    ds = make_dataset("kinetics-sounds", root=kinetics, val_fraction=0.0, **SMALL)
    v = ds.test.gather("visual", torch.tensor([0]))
    assert v.shape == (1, 3, 3, 16, 16)
    torch.testing.assert_close(v[0, 0], v[0, 1])
    torch.testing.assert_close(v[0, 0], v[0, 2])
    assert ds.train.gather("visual", torch.arange(len(ds.train))).shape == (9, 3, 3, 16, 16)


def test_spectrogram_cache_avoids_recomputation(crema, tmp_path, monkeypatch):
    import mmenv.datasets.media_split as media_split

    calls = []
    real = media_split.log_spectrogram
    monkeypatch.setattr(media_split, "log_spectrogram", lambda x, cfg: calls.append(1) or real(x, cfg))
    cache = tmp_path / "cache"
    ds = make_dataset("crema-d", root=crema, val_fraction=0.0, cache_dir=cache, **SMALL)
    idx = torch.tensor([0, 1, 1, 2])
    first = ds.train.gather("audio", idx)
    assert len(calls) == 3  # three distinct clips, the repeat is served from memory
    torch.testing.assert_close(ds.train.gather("audio", idx), first)
    ds.train.reseed(5)
    ds.train.gather("audio", torch.tensor([2, 0]))
    assert len(calls) == 3  # no STFT for clips already computed
    assert len(list(cache.glob("*.npy"))) == 3
    # A fresh data set without the in-memory cache reads the disk cache: still no STFT.
    again = make_dataset("crema-d", root=crema, val_fraction=0.0, cache_dir=cache, memory_cache=False, **SMALL)
    torch.testing.assert_close(again.train.gather("audio", idx), first)
    assert len(calls) == 3
    again.train.gather("audio", torch.tensor([3]))
    assert len(calls) == 4


def test_integer_labels_keep_numeric_order(tmp_path):
    # Kinetics-Sounds lists often hold class indices; "10" must not sort before "2".
    labels = [str(k) for k in (0, 1, 2, 10, 11)]
    train = [(f"v{i}", labels[i % 5]) for i in range(5)]
    root = make_av_tree(tmp_path / "ks", "audio", "visual", train, [("t0", "10")], frames_per_clip=1)
    ds = make_dataset("kinetics-sounds", root=root, val_fraction=0.0, **SMALL)
    assert list(ds.class_names) == labels
    assert ds.train.labels.tolist() == [0, 1, 2, 3, 4] and ds.test.labels.tolist() == [3]


def test_label_list_with_byte_order_mark(crema):
    text = (crema / "train.csv").read_text()
    (crema / "train.csv").write_text("\ufeff" + text, encoding="utf-8")
    ds = make_dataset("crema-d", root=crema, val_fraction=0.0, **SMALL)
    assert ds.train.clips[0].clip_id == text.split(",")[0]


def test_audio_config_shape_by_computation():
    # 3 s at 22,050 Hz = 66,150 samples; a centred STFT with hop 353 has 1 + 66150 // 353
    # = 188 frames and n_fft / 2 + 1 = 257 bins.
    cfg = AudioConfig()
    assert cfg.num_samples == 66150 and 66150 // 353 == 187
    assert cfg.shape == (1, 257, 188)
    spec = log_spectrogram(np.random.default_rng(0).uniform(-1, 1, 66150).astype(np.float32), cfg)
    assert spec.shape == (1, 257, 188)
    # A 1-second clip is tiled three times: the same spectrogram as its explicit tiling.
    one = np.random.default_rng(1).uniform(-0.5, 0.5, 22050).astype(np.float32)
    torch.testing.assert_close(log_spectrogram(one, cfg), log_spectrogram(np.tile(one, 3), cfg))


def test_workers_share_one_spectrogram_cache(crema):
    # With worker processes the cache lives in the main process: a clip decoded once is
    # served from it whichever worker would get it next, and it is held once.
    ds = make_dataset("crema-d", root=crema, val_fraction=0.0, num_workers=2, **SMALL)
    idx = torch.arange(len(ds.train))
    first = ds.train.gather("audio", idx)
    assert sorted(ds.train.decoder.memory) == idx.tolist()
    for clip in ds.train.clips:  # from now on a worker that decodes a WAV fails
        clip.audio.write_bytes(b"gone")
    torch.testing.assert_close(ds.train.gather("audio", idx.flip(0)), first.flip(0))
    torch.testing.assert_close(ds.train.gather("audio", torch.tensor([5, 0, 5])), first[[5, 0, 5]])


def test_repeated_or_shared_clips_are_errors(crema):
    lines = (crema / "train.csv").read_text().splitlines()
    (crema / "train.csv").write_text("\n".join(lines + [lines[2]]) + "\n")
    clip = lines[2].split(",")[0]
    with pytest.raises(DatasetError, match=rf"train.csv, row 13: clip '{clip}' is already listed \(row 3\)"):
        make_dataset("crema-d", root=crema)
    (crema / "train.csv").write_text("\n".join(lines) + "\n")
    test_lines = (crema / "test.csv").read_text().splitlines()
    (crema / "test.csv").write_text("\n".join(test_lines + [lines[0]]) + "\n")
    with pytest.raises(DatasetError, match=rf"test.csv, row 7: clip '{lines[0].split(',')[0]}' is already listed "
                                           rf"\(.*train.csv, row 1\)"):
        make_dataset("crema-d", root=crema)
