"""Runs the runnable code blocks of one documentation page, in order (used by tests/test_docs.py).

``python docs_runner.py BLOCKS.json REPORT.json``, in the folder the blocks run in. Python
blocks are executed as ``__main__`` in a fresh namespace (``continues``: the previous one's);
bash blocks run with ``bash -e``. Each block's outcome (ok, or the error's last lines) is
written to REPORT.json after every block, so a hang still reports the blocks before it.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import traceback


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (a block's cost, whatever the machine's load)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(spec_path: str, report_path: str) -> int:
    blocks = json.loads(open(spec_path, encoding="utf-8").read())
    report = []
    namespace: dict = {}
    for b in blocks:
        entry = {"where": b["where"], "lang": b["lang"], "ok": True, "error": "", "cpu_s": 0.0}
        cpu0 = _cpu_seconds()
        if b["lang"] == "python":
            if not b["continues"]:
                namespace = {"__name__": "__main__", "__file__": b["where"]}
            try:
                exec(compile(b["code"], b["where"], "exec"), namespace)
            except BaseException:  # noqa: BLE001 - reported, the next block still runs
                entry.update(ok=False, error="".join(traceback.format_exc().splitlines(True)[-12:]))
        else:
            proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", b["code"]], capture_output=True, text=True)
            if proc.returncode != 0:
                entry.update(ok=False, error=f"exit {proc.returncode}\n{proc.stdout[-1500:]}\n{proc.stderr[-2500:]}")
        entry["cpu_s"] = round(_cpu_seconds() - cpu0, 2)
        report.append(entry)
        with open(report_path, "w", encoding="utf-8") as fh:
            json.dump(report, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
