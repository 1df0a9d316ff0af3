"""Type-check the package as it is installed: ``mmenv`` with ``mmenv.agents`` and ``mmenv.experiments``.

The repository keeps ``agents/`` and ``experiments/`` at the top level while the code imports them
as ``mmenv.agents`` / ``mmenv.experiments`` (setuptools ``package-dir``). A type checker run on the
folders would see three unrelated packages and treat every cross import as unknown (``Any``). This
script lays out the installed tree in a temporary folder (symbolic links to the repository's files,
so the errors name the repository's modules) and runs mypy on the one package ``mmenv``, with the
settings of ``[tool.mypy]`` in pyproject.toml::

    python scripts/typecheck.py          # exit status of mypy
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUBPACKAGES = {"agents": ROOT / "agents", "experiments": ROOT / "experiments"}


def installed_tree(dest: Path) -> Path:
    """``dest/mmenv``: every entry of the repository's ``mmenv/`` plus the two top-level subpackages."""
    pkg = dest / "mmenv"
    pkg.mkdir()
    for entry in (ROOT / "mmenv").iterdir():
        if entry.name != "__pycache__":
            (pkg / entry.name).symlink_to(entry)
    for name, path in SUBPACKAGES.items():
        (pkg / name).symlink_to(path)
    return pkg


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="mmenv-typecheck-") as tmp:
        installed_tree(Path(tmp))
        cmd = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "-p", "mmenv"]
        return subprocess.call(cmd, cwd=tmp)


if __name__ == "__main__":
    sys.exit(main())
