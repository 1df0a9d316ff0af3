"""The distribution installs one import name, ``mmenv``, and works beside a user's own folders.

The repository keeps ``agents/`` and ``experiments/`` at the top level; installed, they are
``mmenv.agents`` and ``mmenv.experiments``. A top-level ``agents`` in site-packages would
collide with a user's own ``agents/`` package and with other distributions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.subprocess


def test_wheel_has_one_top_level_name(tmp_path):
    # Build isolation fetches setuptools from the package index, as any user's pip would.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    (wheel,) = tmp_path.glob("mmenv-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"mmenv"}
    # The mapped folders and the data the package needs at run time are inside the namespace.
    for needed in ("mmenv/agents/reinforce.py", "mmenv/experiments/compare.py", "mmenv/experiments/configs/tiny.yaml",
                   "mmenv/datasets/data/uci_mfeat.npz", "mmenv/py.typed"):
        assert needed in names, needed
    (top_level,) = [n for n in names if n.endswith("top_level.txt")] or [None]
    if top_level:
        assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["mmenv"]


def test_compare_runs_from_a_folder_with_its_own_agents_and_experiments(tmp_path):
    for name in ("agents", "experiments"):
        pkg = tmp_path / name
        pkg.mkdir()
        # A user's package of the same name that would break mmenv if it were imported instead.
        (pkg / "__init__.py").write_text("raise ImportError('the user package was imported by mmenv')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-m", "mmenv", "compare", "--config", "tiny", "--seeds", "1",
                           "--out", str(tmp_path / "out"), "--no-progress"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "out" / "results.csv").exists()
