"""A sweep started from a script without ``if __name__ == "__main__":`` fails in one clear line.

Worker processes start with spawn and re-import the main script; without the guard every
worker starts the sweep again, which Python refuses, and the pool broke: every run was
recorded as "worker crashed: BrokenProcessPool" and the script exited 0.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from mmenv.experiments import backends

SWEEP = """
from mmenv.experiments.compare import run_comparison
from mmenv.experiments.config import load_config

{indent}summary = run_comparison(load_config("tiny", overrides={{"out": "out", "workers": 2, "env.epochs": 1}}),
{indent}                         progress=False)
{indent}print(summary.status_counts)
"""


@pytest.mark.parametrize("source, lacks", [
    ("run()\n", True),
    ("if __name__ == '__main__':\n    run()\n", False),
    ('if "__main__" == __name__:\n    run()\n', False),
    ("def main():\n    if __name__ == \"__main__\":\n        run()\n", False),
    ("if __name__ == 'other':\n    run()\n", True),
])
def test_main_lacks_guard_reads_the_main_script(tmp_path, monkeypatch, source, lacks):
    script = tmp_path / "script.py"
    script.write_text(source)
    fake_main = type(sys)("__main__")
    fake_main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    assert backends.main_lacks_guard() == (str(script) if lacks else None)
    fake_main.__file__ = None                       # interactive / python -c: nothing to read
    assert backends.main_lacks_guard() is None


@pytest.mark.subprocess
def test_unguarded_sweep_fails_with_one_line_naming_the_fix(tmp_path):
    (tmp_path / "sweep.py").write_text(textwrap.dedent(SWEEP.format(indent="")))
    proc = subprocess.run([sys.executable, "sweep.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("mmenv.experiments.backends.PoolStartError: ") and "sweep.py" in last
    assert 'if __name__ == "__main__":' in last
    # the workers leave quietly: no traceback of theirs, no run recorded as crashed
    assert proc.stderr.count("Traceback") == 1 and "BrokenProcessPool" not in proc.stderr
    assert not list((tmp_path / "out" / "runs").glob("*.json"))
