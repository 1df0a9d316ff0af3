"""The package's errors: every class listed in mmenv.errors, and one line (no traceback) on
the command line for a package error."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import pytest

import mmenv
import mmenv.errors
from mmenv.errors import MMEnvError


def _all_modules() -> list[str]:
    """Every module of the package; agents/ and experiments/ install as mmenv.agents and
    mmenv.experiments from folders of their own, so they are walked explicitly."""
    import mmenv.agents
    import mmenv.experiments

    names = []
    for pkg in (mmenv, mmenv.agents, mmenv.experiments):
        names += [info.name for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
    return [n for n in names if not n.endswith("__main__")]


def _subclasses(cls: type) -> set[type]:
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub} | _subclasses(sub)
    return out


def test_every_error_class_of_the_package_is_listed_in_mmenv_errors():
    for name in _all_modules():
        importlib.import_module(name)
    found = {c for c in _subclasses(MMEnvError) if c.__module__.startswith("mmenv.")}
    assert len(found) >= 20   # the walk did import the package (agents and experiments too)
    missing = sorted(c.__qualname__ for c in found if getattr(mmenv.errors, c.__name__, None) is not c)
    assert not missing, f"error classes not listed in mmenv/errors.py: {missing}"
    assert {c.__name__ for c in found} <= set(mmenv.errors.__all__)
    for name in mmenv.errors.__all__:   # and nothing listed that does not exist
        assert issubclass(getattr(mmenv.errors, name), MMEnvError), name


def test_compare_on_ray_without_ray_is_one_line(monkeypatch, tmp_path, capsys):
    from mmenv.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)   # `import ray` raises ImportError
    rc = main(["compare", "--config", "tiny", "--backend", "ray", "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and "the Ray backend needs Ray" in err[0] and "pip install" in err[0], err
    assert "Traceback" not in "\n".join(err)


class _FakeRay:
    """What the CPU check reads of a connected ``ray`` module."""

    def __init__(self, cpus: int) -> None:
        self.cpus = cpus

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": float(self.cpus)}


def test_more_workers_than_cluster_cpus_is_a_package_error():
    """A package error, so the command line prints it as one line (main catches MMEnvError)."""
    from mmenv.agents.ray_rollouts import check_cpus

    check_cpus(_FakeRay(2), 2)
    with pytest.raises(MMEnvError, match="workers=3 Ray actors need 3 CPUs, but the Ray cluster has 2"):
        check_cpus(_FakeRay(2), 3)
