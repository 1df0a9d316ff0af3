"""Clip lists for raw-media data sets: ``<clip>,<label>`` files resolved to clips.

A data set is a list of clips, each with a label, a WAV file and a folder of frames.
Bad input raises :class:`~mmenv.datasets.base.DatasetError` naming the file (missing
audio, missing or empty frame folder) or the list row (unknown label, malformed row, a
clip listed twice or in both lists).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .base import DatasetError, read_text_file
from .frames import IMAGE_EXTENSIONS, check_image_header
from .wav import check_wav_header

__all__ = ["MediaClip", "read_label_list", "check_disjoint_lists", "sorted_labels", "build_clips"]


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
    for row_no, row in enumerate(csv.reader(io.StringIO(read_text_file(path, "label list"), newline="")), start=1):
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
        # Headers are checked now (cheap: no decoding), so a corrupt clip of any split fails
        # when the data set is built, naming the clip, not at the final test evaluation.
        try:
            if audio is not None and audio.suffix.lower() == ".wav":
                check_wav_header(audio)
            for frame in frames:
                check_image_header(frame)
        except DatasetError as err:
            raise DatasetError(f"{list_path}, row {row_no}: clip {clip!r}: {err}") from None
        clips.append(MediaClip(clip, class_index[label], audio, frames))
    return clips
