"""Hashes of file contents for data fingerprints: location-independent and cheap.

:func:`file_digest` hashes what a file holds, never where it lies: an identical copy in
another folder has the same digest, and a file rewritten in place gets another one.

* A file of at most :data:`FULL_HASH_BYTES` is hashed whole (every WAV, JPEG and label
  file of the shipped media data sets, typical feature files).
* A larger file is hashed by its size, its first and last :data:`CHUNK_BYTES` (headers,
  HDF5's superblock and the tail where appended data lands) and :data:`SAMPLED_CHUNKS`
  chunks at evenly spaced offsets. A change confined to bytes outside those chunks is
  not seen; splits that read such files add a sample of decoded rows (see
  :meth:`mmenv.datasets.features.HDF5Split.fingerprint_parts`).

Digests are cached per process by the file's identity and change stamps
``(device, inode, size, mtime_ns, ctime_ns)``: environments built again on the same files
(a sweep's runs, a resume) hash each file once, and any write to the file (which moves
``mtime``/``ctime``) invalidates its entry.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["FULL_HASH_BYTES", "CHUNK_BYTES", "SAMPLED_CHUNKS", "file_digest", "clear_digest_cache"]

#: Files up to this size (4 MiB) are hashed whole.
FULL_HASH_BYTES = 4 * 1024 * 1024
#: Bytes read at the head, the tail and each sampled offset of a larger file.
CHUNK_BYTES = 64 * 1024
#: Evenly spaced chunks hashed between head and tail of a larger file.
SAMPLED_CHUNKS = 16
#: Entries kept in the per-process digest cache before it is emptied.
_CACHE_LIMIT = 200_000

_cache: dict[tuple[int, int, int, int, int], str] = {}


def clear_digest_cache() -> None:
    """Forget every cached digest (the next :func:`file_digest` reads the files again)."""
    _cache.clear()


def file_digest(path: str | os.PathLike) -> str:
    """A hex digest of ``path``'s contents (size + whole file, or head, tail and sampled chunks).

    Raises ``OSError`` when the file cannot be read; callers name the data set around it.
    """
    path = Path(path)
    st = os.stat(path)
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    cached = _cache.get(key)
    if cached is not None:
        return cached
    h = hashlib.sha256()
    size = st.st_size
    h.update(size.to_bytes(8, "little"))
    with open(path, "rb") as fh:
        if size <= FULL_HASH_BYTES:
            while block := fh.read(1024 * 1024):
                h.update(block)
        else:
            step = (size - CHUNK_BYTES) / (SAMPLED_CHUNKS + 1)
            offsets = [0, *(int(step * (k + 1)) for k in range(SAMPLED_CHUNKS)), size - CHUNK_BYTES]
            for offset in offsets:
                fh.seek(offset)
                h.update(fh.read(CHUNK_BYTES))
    digest = h.hexdigest()
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[key] = digest
    return digest
