"""Cost of :func:`mmenv.datasets.base.data_fingerprint`: milliseconds per call.

Measures the median of ``--calls`` calls on the synthetic and AV-digits data sets (in
memory) and on a generated pair of HDF5 feature files (read lazily): once with the
per-process file-digest cache emptied before every call (the files are read) and once
with it warm (what a second environment on the same files pays)::

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/fingerprint.py

Last lines: ``RESULT fingerprint_ms <data set> <ms>``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from mmenv.datasets import make_dataset  # noqa: E402
from mmenv.datasets.base import data_fingerprint  # noqa: E402
from mmenv.datasets.content_hash import clear_digest_cache  # noqa: E402
from mmenv.datasets.features import save_features  # noqa: E402


def median_ms(call: Callable[[], object], calls: int, clear: bool = False) -> float:
    times = []
    for _ in range(calls):
        if clear:
            clear_digest_cache()
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--rows", type=int, default=20000, help="train rows of the HDF5 files (test: a quarter)")
    args = parser.parse_args()
    results: dict[str, float] = {}
    for name in ("synthetic", "av-digits"):
        dataset = make_dataset(name)
        results[name] = median_ms(lambda ds=dataset: data_fingerprint(ds), args.calls)
    with tempfile.TemporaryDirectory() as folder:
        rng = np.random.default_rng(0)
        for split, n in (("train", args.rows), ("test", args.rows // 4)):
            arrays = {"a": rng.normal(size=(n, 128)).astype(np.float32), "b": rng.normal(size=(n, 64)).astype(np.float32)}
            save_features(Path(folder) / f"{split}.h5", arrays, np.arange(n) % 10)
        mib = sum(p.stat().st_size for p in Path(folder).glob("*.h5")) / 2 ** 20
        dataset = make_dataset("features", root=folder)
        results[f"hdf5-{mib:.1f}MiB-cold"] = median_ms(lambda: data_fingerprint(dataset), args.calls, clear=True)
        results[f"hdf5-{mib:.1f}MiB-cached"] = median_ms(lambda: data_fingerprint(dataset), args.calls)
    for name, ms in results.items():
        print(f"RESULT fingerprint_ms {name} {ms:.2f}")


if __name__ == "__main__":
    main()
