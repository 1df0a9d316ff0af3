"""``MediaSplit``: a split of audio-visual clips decoded on demand.

The split gathers a batch of one modality by decoding files (:mod:`mmenv.datasets.wav`,
:mod:`mmenv.datasets.frames`). Spectrograms are deterministic, so they are cached: in
memory in the main process (workers only decode the clips not cached yet), and on disk
as one ``.npy`` per clip when ``cache_dir`` is given (shared by worker processes and by
later runs; the file name carries the STFT settings). Frames: training splits take a
sorted random choice of ``num_frames`` frames (files sorted by name) with random crops
and flips; evaluation splits take evenly spaced frames, resized.

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
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..atomic import atomic_write
from ..errors import InvalidArgumentError, WriteError
from .base import DatasetError, Split
from .clip_lists import MediaClip
from .content_hash import file_digest
from .frames import FrameConfig, image_tensor, load_rgb, random_resized_crop_box
from .wav import AudioConfig, log_spectrogram, read_wav, resample_linear

__all__ = ["ClipDecoder", "MediaSplit"]


class ClipDecoder(torch.utils.data.Dataset):
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
        if clip.audio is None:
            raise DatasetError(f"clip {clip.clip_id!r} has no audio file (the data set was built without audio)")
        x, rate = read_wav(clip.audio)
        x = resample_linear(x, rate, self.audio.sample_rate)
        spec = log_spectrogram(x, self.audio)
        if cached is not None:
            # Atomic (concurrent workers never see half a file); a cache that cannot be
            # written (disk full) only costs speed, so training goes on.
            try:
                atomic_write(cached, lambda f: np.save(f, spec.numpy()))
            except WriteError as exc:
                warnings.warn(f"spectrogram cache not written, continuing without it: {exc}", stacklevel=2)
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
            picks = (np.round(np.linspace(0, n - 1, cfg.num_frames)).astype(np.int64) if cfg.num_frames > 1
                     else np.array([n // 2], dtype=np.int64))
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
            out.append(image_tensor(img, cfg.size, box, flip))
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
            raise InvalidArgumentError(f"num_workers must be >= 0, got {num_workers}")
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
        self.decoder = ClipDecoder(self.clips, audio, frames, train, self.cache_dir,
                                {v: k for k, v in self.role.items()}, memory_cache)
        # The workers get a decoder without a memory cache: the spectrogram cache lives in
        # this process only, so each clip is transformed once and held once, however many
        # workers there are (a per-worker cache would hold up to num_workers copies).
        self._worker_decoder = ClipDecoder(self.clips, audio, frames, train, self.cache_dir,
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
            # internal invariant: the env gathers only the split's own modalities
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

    def fingerprint_parts(self) -> Iterator[bytes]:
        """The decoding settings, then per clip its id and the bytes of its WAV and frame files
        (:func:`~mmenv.datasets.content_hash.file_digest`; frames named by their file name within the
        clip's folder). Never a path: a copy of the data set elsewhere fingerprints the same."""
        yield repr((self.audio_cfg, self.frame_cfg, self.train_mode, sorted(self.role.items()))).encode()
        for clip in self.clips:
            audio = "" if clip.audio is None else file_digest(clip.audio)
            frames = [(f.name, file_digest(f)) for f in clip.frames]
            yield repr((clip.clip_id, clip.label, audio, frames)).encode()

    def source_files(self) -> list[Path]:
        out: list[Path] = []
        for clip in self.clips:
            if clip.audio is not None:
                out.append(clip.audio)
            out.extend(clip.frames)
        return out

    def to(self, device: torch.device | str) -> MediaSplit:
        out = MediaSplit(self.clips, self.audio_cfg, self.frame_cfg, self.train_mode, self.role, device,
                         self.num_workers, self.cache_dir, 0, self.name, self.memory_cache)
        out.generator = self.generator
        out.decoder.memory = self.decoder.memory  # share the in-process spectrogram cache
        return out

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_loader"] = None
        return state
