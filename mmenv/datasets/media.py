"""Raw audio-visual media: WAV -> log spectrogram, JPEG frames -> normalised tensors.

One module serves every audio + frames data set (CREMA-D, Kinetics-Sounds, a user's own
clips). A data set is a list of clips, each with a label, a WAV file and a folder of
JPEG frames. The split gathers a batch of one modality by decoding files:

* **audio** (``kind="spectrogram"``, shape ``[1, F, T]``), following OGM-GE's CREMA-D
  pipeline: read the WAV (8/16/24/32-bit PCM or 32/64-bit float, plain or
  ``WAVE_FORMAT_EXTENSIBLE``; channels averaged, as librosa's ``mono=True``), resample to ``sample_rate`` (22,050 Hz) by *linear
  interpolation* if the file has another rate (OGM-GE uses librosa's resampler; linear
  interpolation is our simpler stand-in), tile the waveform to ``seconds`` (3 s) and
  clip it to [-1, 1], then ``torch.stft`` (``n_fft`` 512, hop 353, Hann window,
  centred with zero padding as librosa >= 0.10 does) and ``log(|X| + 1e-7)``: 257 x 188
  for the defaults. Spectrograms are deterministic, so they are cached: in memory in the
  main process (workers only decode the clips not cached yet), and on disk as one ``.npy`` per clip when ``cache_dir`` is given (shared by
  worker processes and by later runs; the file name carries the STFT settings).
* **visual** (``kind="frames"``, shape ``[num_frames, 3, S, S]``): ``num_frames`` JPEGs
  from the clip's folder (files sorted by name), decoded with Pillow. Training split:
  sorted random choice of frames, RandomResizedCrop (torchvision's algorithm: scale
  (0.08, 1), ratio (3/4, 4/3), 10 tries then a centre crop) to ``S x S`` and a horizontal
  flip with probability 0.5. Evaluation splits: evenly spaced frames resized to
  ``S x S``. Both normalise with the ImageNet mean and std.

Randomness: the training split owns a CPU ``torch.Generator``; :meth:`MediaSplit.reseed`
(called by the environment at every ``reset`` with the episode seed) restarts it. Each
gathered sample gets one seed drawn from it in the main process, and the decoder derives
that sample's crop/flip/frame choice from its seed alone, so the batches are the same
whatever ``num_workers`` is.

Workers: ``num_workers=0`` (default) decodes in the calling process, which is what a
CPU-only machine with few cores wants; ``num_workers=k`` keeps a persistent
``torch.utils.data.DataLoader`` with ``k`` worker processes and splits every gathered
batch into chunks across them; ``pin_memory`` is on when the device is CUDA. Gathering
raw media is the one place where indices go to the host (``indices.cpu()``): files are
read by the CPU.

Bad input raises :class:`~mmenv.datasets.base.DatasetError` naming the file (missing,
unreadable, truncated, empty) or the list row (unknown label, malformed row).
"""

from __future__ import annotations

import csv
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from .base import DatasetError, ModalitySpec, MultimodalDataset, Split

__all__ = [
    "AudioConfig",
    "FrameConfig",
    "MediaClip",
    "MediaSplit",
    "read_wav",
    "resample_linear",
    "log_spectrogram",
    "load_rgb",
    "random_resized_crop_box",
    "read_label_list",
    "stratified_holdout",
    "sorted_labels",
    "check_disjoint_lists",
    "make_media_dataset",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class AudioConfig:
    """Waveform -> log-magnitude spectrogram settings (OGM-GE's CREMA-D defaults)."""

    sample_rate: int = 22050
    seconds: float = 3.0
    n_fft: int = 512
    hop_length: int = 353

    @property
    def num_samples(self) -> int:
        return int(round(self.sample_rate * self.seconds))

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(1, n_fft // 2 + 1, 1 + num_samples // hop_length)`` (centred STFT)."""
        return (1, self.n_fft // 2 + 1, 1 + self.num_samples // self.hop_length)

    def cache_key(self) -> str:
        return f"sr{self.sample_rate}_s{self.seconds:g}_n{self.n_fft}_h{self.hop_length}"


@dataclass(frozen=True)
class FrameConfig:
    """Frame decoding and augmentation settings."""

    size: int = 224
    num_frames: int = 1
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    flip_p: float = 0.5

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.num_frames, 3, self.size, self.size)


# --------------------------------------------------------------------------- audio
_WAVE_PCM, _WAVE_FLOAT, _WAVE_EXTENSIBLE = 0x0001, 0x0003, 0xFFFE


def _wav_format(body: bytes, path: Path) -> tuple[int, int, int, int]:
    """``(format tag, channels, rate, bytes per sample)`` of a ``fmt `` chunk.

    ``WAVE_FORMAT_EXTENSIBLE`` (what ffmpeg and sox write for 24-bit or multichannel audio)
    carries the real format in the first two bytes of its SubFormat GUID.
    """
    if len(body) < 16:
        raise DatasetError(f"cannot read WAV file {path}: its 'fmt ' chunk is {len(body)} bytes, expected >= 16")
    tag, channels, rate, _, block, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == _WAVE_EXTENSIBLE:
        if len(body) < 26:
            raise DatasetError(f"cannot read WAV file {path}: WAVE_FORMAT_EXTENSIBLE header without a SubFormat")
        tag = int.from_bytes(body[24:26], "little")
    if channels < 1 or rate < 1 or block < channels or block % channels:
        raise DatasetError(f"cannot read WAV file {path}: invalid header ({channels} channels, {rate} Hz, "
                           f"block of {block} bytes)")
    return tag, channels, rate, block // channels


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a WAV file as mono float32 (channels averaged) and its sample rate.

    Reads the RIFF chunks directly (the standard-library :mod:`wave` module of Python
    < 3.12 rejects ``WAVE_FORMAT_EXTENSIBLE`` files and none of its versions reads float
    samples): integer PCM of 8 (unsigned), 16, 24 or 32 bits scaled to [-1, 1), and 32/64-bit
    IEEE float as stored, plain or extensible. Raises :class:`DatasetError` for a missing,
    unreadable, truncated or empty file, or another sample format (e.g. compressed audio).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"audio file not found: {path}")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DatasetError(f"cannot read WAV file {path}: {err}") from None
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise DatasetError(f"cannot read WAV file {path}: no RIFF/WAVE header (is it a .wav file?)")
    fmt = None
    raw, declared = None, 0
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        body = data[pos + 8:pos + 8 + size]
        if chunk == b"fmt ":
            fmt = _wav_format(body, path)
        elif chunk == b"data":
            raw, declared = body, size
            if size in (0, 0xFFFFFFFF):  # written to a pipe: the size was never filled in
                raw = data[pos + 8:]
                declared = len(raw)
            break
        pos += 8 + size + (size & 1)  # chunks are padded to an even length
    if fmt is None:
        raise DatasetError(f"cannot read WAV file {path}: no 'fmt ' chunk before the audio (truncated?)")
    if raw is None:
        raise DatasetError(f"WAV file {path} is truncated or holds no audio: no 'data' chunk")
    tag, channels, rate, width = fmt
    frame_bytes = channels * width
    if declared == 0:
        raise DatasetError(f"WAV file {path} holds no audio samples")
    if len(raw) < declared:
        raise DatasetError(f"WAV file {path} is truncated: header promises {declared // frame_bytes} frames, "
                           f"the file holds {len(raw) // frame_bytes}")
    raw = raw[: len(raw) - len(raw) % frame_bytes]
    if tag == _WAVE_PCM and width == 1:  # 8-bit WAV is unsigned
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif tag == _WAVE_PCM and width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif tag == _WAVE_PCM and width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float32) / float(1 << 23)
    elif tag == _WAVE_PCM and width == 4:  # also 24 valid bits in a 32-bit container (left-justified)
        x = (np.frombuffer(raw, "<i4").astype(np.float64) / float(1 << 31)).astype(np.float32)
    elif tag == _WAVE_FLOAT and width in (4, 8):
        x = np.frombuffer(raw, "<f4" if width == 4 else "<f8").astype(np.float32)
        if not np.isfinite(x).all():
            raise DatasetError(f"WAV file {path} holds NaN or infinite samples")
    else:
        raise DatasetError(f"WAV file {path} has an unsupported sample format (format tag {tag:#06x}, "
                           f"{8 * width}-bit); convert it to PCM, e.g. ffmpeg -i in.wav -c:a pcm_s16le out.wav")
    x = x.reshape(-1, channels).mean(axis=1)
    return x, rate


def resample_linear(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Resample ``x`` from ``rate`` to ``target`` Hz by linear interpolation."""
    if rate == target:
        return x
    n_out = max(1, int(round(len(x) * target / rate)))
    t = np.arange(n_out, dtype=np.float64) * (rate / target)
    return np.interp(t, np.arange(len(x), dtype=np.float64), x).astype(np.float32)


def log_spectrogram(x: np.ndarray, cfg: AudioConfig) -> Tensor:
    """Tile ``x`` to ``cfg.seconds``, clip to [-1, 1], STFT, ``log(|X| + 1e-7)`` -> ``[1, F, T]``."""
    n = cfg.num_samples
    reps = math.ceil(n / len(x))
    tiled = np.clip(np.tile(x, reps)[:n], -1.0, 1.0)
    wav = torch.from_numpy(np.ascontiguousarray(tiled, dtype=np.float32))
    spec = torch.stft(wav, n_fft=cfg.n_fft, hop_length=cfg.hop_length, window=torch.hann_window(cfg.n_fft),
                      center=True, pad_mode="constant", return_complex=True)
    return torch.log(spec.abs() + 1e-7).unsqueeze(0)


# --------------------------------------------------------------------------- frames
def load_rgb(path: str | os.PathLike):
    """Decode an image file to an RGB ``PIL.Image`` (fully loaded), or raise DatasetError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except FileNotFoundError:
        raise DatasetError(f"image file not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DatasetError(f"cannot decode image {path}: {err} (truncated or not an image?)") from None


def random_resized_crop_box(width: int, height: int, rng: np.random.Generator, scale=(0.08, 1.0),
                            ratio=(3.0 / 4.0, 4.0 / 3.0)) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop box ``(left, top, w, h)``, drawn from ``rng``."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, w, h
    # Fallback: the largest centred crop with a ratio inside the bounds.
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def _image_tensor(img, size: int, box: tuple[int, int, int, int] | None, flip: bool) -> Tensor:
    from PIL import Image

    left, top, w, h = box if box is not None else (0, 0, img.width, img.height)
    out = img.resize((size, size), Image.BILINEAR, box=(left, top, left + w, top + h))
    if flip:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    x = torch.from_numpy(np.asarray(out, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


# --------------------------------------------------------------------------- clips and lists
@dataclass(frozen=True)
class MediaClip:
    """One sample: its id, label index, WAV path and the sorted paths of its frames."""

    clip_id: str
    label: int
    audio: Path | None
    frames: tuple[Path, ...]


def read_label_list(path: str | os.PathLike, classes: Sequence[str] | None) -> list[tuple[str, str, int]]:
    """Read a ``<clip>,<label>`` list: returns ``(clip, label, row)`` (row 1-based).

    Blank lines are skipped; a first row whose label column reads ``label`` is a header.
    When ``classes`` is given, a label outside it raises DatasetError naming the row.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"label list not found: {path}")
    rows: list[tuple[str, str, int]] = []
    # utf-8-sig: a list saved by a spreadsheet starts with a byte-order mark, which would
    # otherwise become part of the first clip id.
    with open(path, newline="", encoding="utf-8-sig") as f:
        for row_no, row in enumerate(csv.reader(f), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < 2:
                raise DatasetError(f"{path}, row {row_no}: expected '<clip>,<label>', got {row!r}")
            clip, label = row[0].strip(), row[1].strip()
            if row_no == 1 and label.lower() in ("label", "labels", "class"):
                continue
            if classes is not None and label not in classes:
                raise DatasetError(f"{path}, row {row_no}: unknown label {label!r} for clip {clip!r}; "
                                   f"valid labels: {list(classes)}")
            rows.append((clip, label, row_no))
    if not rows:
        raise DatasetError(f"label list {path} has no rows")
    return rows


def check_disjoint_lists(train_rows: Sequence[tuple[str, str, int]], train_path: Path,
                         test_rows: Sequence[tuple[str, str, int]], test_path: Path) -> None:
    """A clip listed twice in one list, or in both lists, is an error naming both rows.

    A repeat would weigh that clip twice; a train clip in the test list leaks into the
    test accuracy.
    """
    seen: dict[str, tuple[Path, int]] = {}
    for rows, path in ((train_rows, train_path), (test_rows, test_path)):
        for clip, _, row_no in rows:
            if clip in seen:
                first_path, first_row = seen[clip]
                where = f"row {first_row}" if first_path == path else f"{first_path}, row {first_row}"
                raise DatasetError(f"{path}, row {row_no}: clip {clip!r} is already listed ({where}); "
                                   f"every clip must appear once, in one list")
            seen[clip] = (path, row_no)


def sorted_labels(labels: Iterable[str]) -> list[str]:
    """The class order when none is given: numeric if every label is an integer, else sorted text.

    Numeric order keeps integer labels where they were (``"2" < "10"``), which plain string
    sorting would not.
    """
    labels = set(labels)
    if labels and all(_is_int(lab) for lab in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (keep, held_out): ``round(fraction * n_c)`` of each class held out."""
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        held.append(idx[: int(round(fraction * len(idx)))])
    held_idx = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    keep = np.setdiff1d(np.arange(len(labels)), held_idx)
    return keep, held_idx


def _frame_files(folder: Path) -> tuple[Path, ...]:
    return tuple(sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS))


def build_clips(rows: Iterable[tuple[str, str, int]], list_path: Path, class_index: Mapping[str, int],
                audio_dir: Path | None, frames_dir: Path | None, audio_ext: str = ".wav") -> list[MediaClip]:
    """Resolve each listed clip to its files; a missing file or empty frame folder is an error."""
    clips = []
    for clip, label, row_no in rows:
        audio = None
        if audio_dir is not None:
            audio = audio_dir / f"{clip}{audio_ext}"
            if not audio.is_file():
                raise DatasetError(f"{list_path}, row {row_no}: clip {clip!r} is listed but its audio file "
                                   f"{audio} does not exist")
        frames: tuple[Path, ...] = ()
        if frames_dir is not None:
            folder = frames_dir / clip
            if not folder.is_dir():
                raise DatasetError(f"{list_path}, row {row_no}: clip {clip!r} is listed but its frame folder "
                                   f"{folder} does not exist")
            frames = _frame_files(folder)
            if not frames:
                raise DatasetError(f"{list_path}, row {row_no}: frame folder {folder} holds no "
                                   f"{'/'.join(IMAGE_EXTENSIONS)} files")
        clips.append(MediaClip(clip, class_index[label], audio, frames))
    return clips


# --------------------------------------------------------------------------- decoding
class _Decoder(torch.utils.data.Dataset):
    """Decodes one ``(modality, sample index, seed)`` item; pickled into worker processes."""

    def __init__(self, clips: Sequence[MediaClip], audio: AudioConfig, frames: FrameConfig, train: bool,
                 cache_dir: Path | None, modality_names: Mapping[str, str], memory_cache: bool = True) -> None:
        self.clips = clips
        self.audio, self.frames, self.train = audio, frames, train
        self.cache_dir = cache_dir
        self.kind_of = dict(modality_names)  # modality name -> "audio" | "visual"
        self.memory: dict[int, Tensor] = {}
        self.memory_cache = memory_cache

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, item: tuple[str, int, int]) -> Tensor:
        modality, i, seed = item
        if self.kind_of[modality] == "audio":
            return self.spectrogram(i)
        return self.visual(i, seed)

    def spectrogram(self, i: int) -> Tensor:
        if i in self.memory:
            return self.memory[i]
        clip = self.clips[i]
        cached = None
        if self.cache_dir is not None:
            cached = self.cache_dir / f"{clip.clip_id}.{self.audio.cache_key()}.npy"
            if cached.is_file():
                try:
                    spec = torch.from_numpy(np.load(cached))
                    if tuple(spec.shape) == self.audio.shape:
                        if self.memory_cache:
                            self.memory[i] = spec
                        return spec
                except (OSError, ValueError):
                    pass  # a damaged cache entry is recomputed below
        x, rate = read_wav(clip.audio)
        x = resample_linear(x, rate, self.audio.sample_rate)
        spec = log_spectrogram(x, self.audio)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                np.save(f, spec.numpy())
            os.replace(tmp, cached)  # atomic: concurrent workers never see half a file
        if self.memory_cache:
            self.memory[i] = spec
        return spec

    def visual(self, i: int, seed: int) -> Tensor:
        clip, cfg = self.clips[i], self.frames
        n = len(clip.frames)
        rng = np.random.default_rng(seed)
        if self.train and n >= cfg.num_frames:
            picks = np.sort(rng.choice(n, size=cfg.num_frames, replace=False))
        elif n >= cfg.num_frames:
            picks = np.round(np.linspace(0, n - 1, cfg.num_frames)).astype(int) if cfg.num_frames > 1 else [n // 2]
        else:  # fewer frames than asked: cycle through them
            picks = np.arange(cfg.num_frames) % n
        out = []
        for k in picks:
            img = load_rgb(clip.frames[int(k)])
            if self.train:
                box = random_resized_crop_box(img.width, img.height, rng, cfg.scale, cfg.ratio)
                flip = bool(rng.random() < cfg.flip_p)
            else:
                box, flip = None, False
            out.append(_image_tensor(img, cfg.size, box, flip))
        return torch.stack(out)


class _BatchList(torch.utils.data.Sampler):
    """A batch sampler whose batches are set before each pass (one gather = one pass)."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, int, int]]] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class MediaSplit(Split):
    """A split of audio-visual clips decoded on demand.

    Args:
        clips: the samples.
        audio, frames: decoding settings.
        train: training split (random frame choice and augmentation) or evaluation split.
        modalities: ``{"audio": name, "visual": name}`` – which modalities exist and
            their names (either may be absent).
        device: where gathered batches and labels live.
        num_workers: decoder processes (0: decode in this process).
        cache_dir: folder for cached spectrograms (``None``: in-memory cache only).
        seed: initial seed of the augmentation generator (the environment reseeds it).
        name: for error messages.
        memory_cache: keep computed spectrograms in memory (193 KB per clip at the
            default size: 1.3 GB for CREMA-D's train split); ``False`` relies on
            ``cache_dir`` alone.
    """

    def __init__(self, clips: Sequence[MediaClip], audio: AudioConfig, frames: FrameConfig, train: bool,
                 modalities: Mapping[str, str], device: torch.device | str = "cpu", num_workers: int = 0,
                 cache_dir: str | os.PathLike | None = None, seed: int = 0, name: str = "media",
                 memory_cache: bool = True) -> None:
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.clips = list(clips)
        self.device = torch.device(device)
        self.labels = torch.tensor([c.label for c in self.clips], dtype=torch.long, device=self.device)
        self.role = dict(modalities)  # "audio"/"visual" -> modality name
        self.modalities = tuple(self.role.values())
        self.train_mode = train
        self.num_workers = num_workers
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.name = name
        self.audio_cfg, self.frame_cfg = audio, frames
        self.memory_cache = memory_cache
        self.decoder = _Decoder(self.clips, audio, frames, train, self.cache_dir,
                                {v: k for k, v in self.role.items()}, memory_cache)
        # The workers get a decoder without a memory cache: the spectrogram cache lives in
        # this process only, so each clip is transformed once and held once, however many
        # workers there are (a per-worker cache would hold up to num_workers copies).
        self._worker_decoder = _Decoder(self.clips, audio, frames, train, self.cache_dir,
                                        {v: k for k, v in self.role.items()}, memory_cache=False)
        self._loader = None
        self._batches = _BatchList()
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Restart the augmentation generator (called with the episode seed at ``reset``)."""
        self.generator = torch.Generator()
        self.generator.manual_seed(int(seed))

    def _loader_or_none(self):
        if self.num_workers == 0:
            return None
        if self._loader is None:
            self._loader = torch.utils.data.DataLoader(
                self._worker_decoder, batch_sampler=self._batches, num_workers=self.num_workers,
                collate_fn=torch.stack, pin_memory=self.device.type == "cuda", persistent_workers=True,
            )
        return self._loader

    def gather(self, modality: str, indices: Tensor) -> Tensor:
        if modality not in self.modalities:
            raise KeyError(f"{self.name}: no modality {modality!r}; this split has {list(self.modalities)}")
        idx = indices.tolist()  # the host sync of raw media: files are read by the CPU
        if self.train_mode:
            seeds = torch.randint(0, 2**62, (len(idx),), generator=self.generator).tolist()
        else:  # evaluation transforms are deterministic
            seeds = [0] * len(idx)
        items = [(modality, int(i), int(s)) for i, s in zip(idx, seeds)]
        if not items:
            shape = self.spec_shape(modality)
            return torch.empty((0, *shape), device=self.device)
        memory = self.decoder.memory if self.memory_cache else None
        if memory is not None and self.decoder.kind_of[modality] == "audio":
            # Decode only the clips not in the cache yet (each once), then read the cache.
            todo = sorted({it[1] for it in items} - memory.keys())
            if todo:
                fresh = self._decode([(modality, i, 0) for i in todo])
                memory.update(zip(todo, fresh.unbind(0)))
            out = torch.stack([memory[it[1]] for it in items])
        else:
            out = self._decode(items)
        return out.to(self.device, non_blocking=True)

    def _decode(self, items: list[tuple[str, int, int]]) -> Tensor:
        """Decode ``items`` in this process or split across the worker processes."""
        loader = self._loader_or_none()
        if loader is None:
            return torch.stack([self.decoder[it] for it in items])
        chunk = math.ceil(len(items) / self.num_workers)
        self._batches.batches = [items[k:k + chunk] for k in range(0, len(items), chunk)]
        return torch.cat(list(loader))

    def spec_shape(self, modality: str) -> tuple[int, ...]:
        role = {v: k for k, v in self.role.items()}[modality]
        return self.audio_cfg.shape if role == "audio" else self.frame_cfg.shape

    def to(self, device: torch.device | str) -> "MediaSplit":
        out = MediaSplit(self.clips, self.audio_cfg, self.frame_cfg, self.train_mode, self.role, device,
                         self.num_workers, self.cache_dir, 0, self.name, self.memory_cache)
        out.generator = self.generator
        out.decoder.memory = self.decoder.memory  # share the in-process spectrogram cache
        return out

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_loader"] = None
        return state


def make_media_dataset(
    name: str,
    root: str | os.PathLike,
    train_list: str,
    test_list: str,
    audio_dir: str | None,
    frames_dir: str | None,
    classes: Sequence[str] | None,
    audio_name: str = "audio",
    visual_name: str = "visual",
    audio_ext: str = ".wav",
    sample_rate: int = 22050,
    seconds: float = 3.0,
    n_fft: int = 512,
    hop_length: int = 353,
    frame_size: int = 224,
    num_frames: int = 1,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    num_workers: int = 0,
    cache_dir: str | os.PathLike | None = None,
    memory_cache: bool = True,
    device: str | torch.device = "cpu",
) -> MultimodalDataset:
    """Build an audio-visual data set from a folder of WAVs, frame folders and two label lists.

    Args:
        name: the data set's name.
        root: the data folder; ``train_list``/``test_list`` (``<clip>,<label>`` rows),
            ``audio_dir`` (``<clip><audio_ext>``) and ``frames_dir`` (``<clip>/*.jpg``)
            are relative to it.
        classes: the class order (labels outside it are errors); ``None`` takes the
            sorted set of labels found in both lists (numerically sorted when every label
            is an integer, see :func:`sorted_labels`).
        audio_name, visual_name: modality names.
        sample_rate, seconds, n_fft, hop_length: the spectrogram (:class:`AudioConfig`).
        frame_size, num_frames: the frames (:class:`FrameConfig`).
        val_fraction, split_seed: validation is ``val_fraction`` of each class of the
            train list, chosen by ``split_seed`` (fixed), decoded with the test transforms.
        num_workers: decoder processes per split (0: decode in the calling process).
        cache_dir: spectrogram disk cache (``None``: none); ``memory_cache``: keep them in
            memory too.
        device: where batches and labels are put (``DUSEnv`` moves them to its device).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{name}: data folder {root} does not exist")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    train_path, test_path = root / train_list, root / test_list
    train_rows = read_label_list(train_path, classes)
    test_rows = read_label_list(test_path, classes)
    check_disjoint_lists(train_rows, train_path, test_rows, test_path)
    if classes is None:
        classes = sorted_labels({r[1] for r in train_rows} | {r[1] for r in test_rows})
    class_index = {c: i for i, c in enumerate(classes)}
    dirs = {}
    for key, sub in (("audio", audio_dir), ("visual", frames_dir)):
        if sub is None:
            continue
        d = root / sub
        if not d.is_dir():
            raise DatasetError(f"{name}: {key} folder {d} does not exist (expected layout: see docs/datasets.md)")
        dirs[key] = d
    train_clips = build_clips(train_rows, train_path, class_index, dirs.get("audio"), dirs.get("visual"), audio_ext)
    test_clips = build_clips(test_rows, test_path, class_index, dirs.get("audio"), dirs.get("visual"), audio_ext)
    roles = {k: v for k, v in (("audio", audio_name), ("visual", visual_name)) if k in dirs}
    audio = AudioConfig(sample_rate, seconds, n_fft, hop_length)
    frames = FrameConfig(frame_size, num_frames)
    labels = np.array([c.label for c in train_clips])
    keep, held = stratified_holdout(labels, val_fraction, split_seed)

    def split(clips, train, tag):
        return MediaSplit(clips, audio, frames, train, roles, device, num_workers, cache_dir, split_seed,
                          f"{name}/{tag}", memory_cache)

    tr = split([train_clips[i] for i in keep], True, "train")
    va = split([train_clips[i] for i in held], False, "val") if len(held) else None
    te = split(test_clips, False, "test")
    specs = []
    if "audio" in roles:
        specs.append(ModalitySpec(audio_name, audio.shape, "spectrogram"))
    if "visual" in roles:
        specs.append(ModalitySpec(visual_name, frames.shape, "frames"))
    ds = MultimodalDataset(name, specs, len(classes), tr, te, va, list(classes))
    ds.info.update(root=str(root), val_fraction=val_fraction, split_seed=split_seed, audio=audio, frames=frames)
    return ds
