"""Audio for raw-media data sets: WAV reading and the log spectrogram.

Following OGM-GE's CREMA-D pipeline (``kind="spectrogram"``, shape ``[1, F, T]``): read
the WAV (8/16/24/32-bit PCM or 32/64-bit float, plain or ``WAVE_FORMAT_EXTENSIBLE``;
channels averaged, as librosa's ``mono=True``), resample to ``sample_rate`` (22,050 Hz)
by *linear interpolation* if the file has another rate (OGM-GE uses librosa's resampler;
linear interpolation is our simpler stand-in), tile the waveform to ``seconds`` (3 s) and
clip it to [-1, 1], then ``torch.stft`` (``n_fft`` 512, hop 353, Hann window, centred
with zero padding as librosa >= 0.10 does) and ``log(|X| + 1e-7)``: 257 x 188 for the
defaults. Caching of spectrograms is the split's business (:mod:`mmenv.datasets.media_split`).
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .base import DatasetError

__all__ = ["AudioConfig", "read_wav", "resample_linear", "log_spectrogram"]


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
