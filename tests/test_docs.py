"""Every ```python and ```bash block of README.md and docs/*.md runs, or is marked as a fragment.

How a block is treated is decided by an HTML comment on the line right before its fence
(blank lines between are allowed); a block without one must run verbatim:

* no marker: the block runs as written. All blocks of one page run in one fresh temporary
  folder, in page order, in one Python process (``tests/docs_runner.py``): a Python block
  is executed as ``__main__`` in a fresh namespace (so ``if __name__ == "__main__":``
  examples start their worker processes as a user's script would); a bash block runs with
  ``bash -e`` in that folder, the test's virtual environment first on ``PATH``. Files a
  block writes (a saved agent, a config) are there for the blocks after it, as they are for
  a reader who runs the page top to bottom.
* ``<!-- continues: reason -->``: a Python block that goes on from the Python block before
  it (same namespace); it runs too.
* ``<!-- fragment: reason -->``: not run (it needs a cluster, a data set on disk, a package
  install, or hours of CPU, which the reason names). It is still checked: Python fragments
  must compile, bash fragments must pass ``bash -n``, and every ``mmenv ...`` command in a
  bash fragment must parse with the real command-line parser.

Long runs in runnable blocks are kept short by the blocks themselves (tiny data, one or two
epochs), not by the test. The test counts every block of every page (fences of other
languages than python/bash are not counted; ```py, ```sh, ```shell and ```console are
refused so no runnable block hides under another name).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNER = Path(__file__).with_name("docs_runner.py")
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[A-Za-z0-9_+-]*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*(?P<kind>fragment|continues)\s*:\s*(?P<reason>.*?)\s*-->\s*$")
REFUSED = {"py", "sh", "shell", "console", "python3", "pycon"}
#: Wall seconds one page may take (its blocks together). The pages need about 3 CPU minutes in
#: all (each block's CPU time is in the runner's report); the limit leaves room for a busy machine.
PAGE_TIMEOUT_S = 600


@dataclass
class Block:
    page: str
    line: int            # 1-based line of the opening fence
    lang: str            # "python" or "bash"
    code: str            # dedented body
    kind: str            # "run", "continues" or "fragment"
    reason: str

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def parse_blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path`` in the counted languages, with its marker."""
    lines = path.read_text(encoding="utf-8").split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m or not m.group("lang"):
            if m:                                   # a bare fence opens a block too: skip its body
                i = _close(lines, i, m.group("indent"))
            i += 1
            continue
        lang, indent = m.group("lang"), m.group("indent")
        end = _close(lines, i, indent)
        if lang in ("python", "bash") or lang in REFUSED:
            body = [ln[len(indent):] if ln.startswith(indent) else ln.lstrip() for ln in lines[i + 1:end]]
            j = i - 1
            while j >= 0 and not lines[j].strip():
                j -= 1
            mk = MARKER.match(lines[j]) if j >= 0 else None
            kind, reason = (mk.group("kind"), mk.group("reason")) if mk else ("run", "")
            blocks.append(Block(path.relative_to(ROOT).as_posix(), i + 1, lang, "\n".join(body) + "\n", kind, reason))
        i = end + 1
    return blocks


def _close(lines: list[str], start: int, indent: str) -> int:
    for k in range(start + 1, len(lines)):
        if re.match(rf"^{re.escape(indent)}```\s*$", lines[k]) or re.match(r"^\s*```\s*$", lines[k]):
            return k
    raise AssertionError(f"unclosed code fence at line {start + 1}")


ALL_BLOCKS = [b for p in PAGES for b in parse_blocks(p)]


def test_every_block_is_counted_and_classified():
    """No block escapes: each is run or a fragment with a reason, in a counted language."""
    raw = 0
    for page in PAGES:
        for line in page.read_text(encoding="utf-8").split("\n"):
            m = FENCE.match(line)
            if m and m.group("lang") in ("python", "bash"):
                raw += 1
    assert raw == sum(b.lang in ("python", "bash") for b in ALL_BLOCKS)
    refused = [b.where for b in ALL_BLOCKS if b.lang in REFUSED]
    assert not refused, f"use ```python or ```bash (run by this test), not: {refused}"
    for b in ALL_BLOCKS:
        assert b.kind in ("run", "continues", "fragment"), b.where
        if b.kind != "run":
            assert len(b.reason) >= 10, f"{b.where}: say why the block is a {b.kind}"
        if b.kind == "continues":
            earlier = [c for c in ALL_BLOCKS if c.page == b.page and c.line < b.line and c.lang == "python"]
            assert b.lang == "python" and earlier, f"{b.where}: 'continues' needs a Python block before it"
    counts = {k: sum(b.kind == k for b in ALL_BLOCKS) for k in ("run", "continues", "fragment")}
    print(f"docs blocks: {len(ALL_BLOCKS)} = {counts}")
    assert len(ALL_BLOCKS) >= 30 and counts["run"] + counts["continues"] > counts["fragment"]


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.kind == "fragment"], ids=lambda b: b.where)
def test_fragments_are_well_formed(block):
    """A fragment is not run, but it compiles, and its mmenv commands parse."""
    if block.lang == "python":
        compile(block.code, block.where, "exec")
        return
    proc = subprocess.run(["bash", "-n"], input=block.code, capture_output=True, text=True)
    assert proc.returncode == 0, f"{block.where}: {proc.stderr}"
    from mmenv.cli import build_parser

    parser = build_parser()
    for argv in _mmenv_commands(block.code):
        try:
            parser.parse_args(argv)
        except SystemExit as exc:                   # argparse's error exit
            raise AssertionError(f"{block.where}: 'mmenv {shlex.join(argv)}' does not parse") from exc


def _mmenv_commands(code: str) -> list[list[str]]:
    """The argument lists of the ``mmenv`` commands of a bash block (continuations joined)."""
    out = []
    for line in code.replace("\\\n", " ").split("\n"):
        for part in re.split(r"&&|;|\|\|", line):
            words = shlex.split(part, comments=True)
            while words and "=" in words[0] and not words[0].startswith("-"):
                words = words[1:]                   # VAR=value prefixes
            if words and words[0] == "mmenv":
                args = words[1:]
                while len(args) >= 2 and args[0] == "--plugin":
                    args = args[2:]
                if args and args[0] not in ("--help", "-h"):
                    out.append(args)
    return out


RUN_PAGES = sorted({b.page for b in ALL_BLOCKS if b.kind != "fragment"})


@pytest.mark.subprocess
@pytest.mark.parametrize("page", RUN_PAGES)
def test_page_blocks_run(page, tmp_path):
    """The runnable blocks of ``page`` run verbatim, in page order, in one fresh folder."""
    blocks = [b for b in ALL_BLOCKS if b.page == page and b.kind != "fragment"]
    spec = tmp_path / "blocks.json"
    spec.write_text(json.dumps([{"where": b.where, "lang": b.lang, "code": b.code, "continues": b.kind == "continues"}
                                for b in blocks]))
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MPLBACKEND"] = "Agg"
    env["PYTHONPATH"] = f"{work}{os.pathsep}{env.get('PYTHONPATH', '')}"
    proc = subprocess.run([sys.executable, str(RUNNER), str(spec), str(tmp_path / "report.json")], cwd=work,
                          env=env, capture_output=True, text=True, timeout=PAGE_TIMEOUT_S)
    report = json.loads((tmp_path / "report.json").read_text()) if (tmp_path / "report.json").is_file() else []
    failed = [r for r in report if not r["ok"]]
    print(f"{page}: {len(report)} of {len(blocks)} blocks ran, {sum(r['cpu_s'] for r in report):.1f} s CPU: "
          + ", ".join(f"{r['where'].split(':')[-1]} {r['cpu_s']:.1f}" for r in report))
    assert proc.returncode == 0 and len(report) == len(blocks) and not failed, (
        "\n\n".join(f"{r['where']} ({r['lang']}) failed:\n{r['error']}" for r in failed)
        or f"runner exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
