"""Every relative link and every repository path named in README.md and docs/*.md exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
# `code` spans that name a file of this repository, e.g. `benchmarks/soak.py`,
# `tests/test_checkpoint.py::test_x`, `experiments/configs/` (a file extension or a trailing
# slash, so that the environment id `mmenv/DUS-v0` is not taken for a path).
REPO_DIRS = ("docs", "examples", "experiments", "mmenv", "agents", "benchmarks", "tests")
CODE_PATH = re.compile(r"`((?:{})/[A-Za-z0-9_./-]*(?:\.[A-Za-z0-9]+|/))(?:::([A-Za-z0-9_]+))?`".format("|".join(REPO_DIRS)))
# A guarantee "proved by" `::test_name` alone refers to the test file named before it.
TEST_REF = re.compile(r"`(tests/[A-Za-z0-9_/]+\.py)?::([A-Za-z0-9_]+)`")


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # '#' lines in code blocks are not headings
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.*)$", text, re.M)}


def _links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return [m.group(1) for m in LINK.finditer(text)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(doc: Path):
    broken = []
    for target in _links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.exists():
            broken.append(f"{target} (no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest})")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {dest.name})")
    assert not broken, f"{doc.relative_to(ROOT)}: broken links: {broken}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_repository_paths_named_in_docs_exist(doc: Path):
    missing = sorted({m.group(1) for m in CODE_PATH.finditer(doc.read_text(encoding="utf-8"))
                      if not (ROOT / m.group(1)).exists()})
    assert not missing, f"{doc.relative_to(ROOT)} names paths that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_tests_exist(doc: Path):
    missing, current = [], None
    for m in TEST_REF.finditer(doc.read_text(encoding="utf-8")):
        current = m.group(1) or current
        if current is None or not (ROOT / current).exists():
            continue  # a missing file is reported by the path test above
        if not re.search(rf"^\s*def {m.group(2)}\(", (ROOT / current).read_text(encoding="utf-8"), re.M):
            missing.append(f"{current}::{m.group(2)}")
    assert not missing, f"{doc.relative_to(ROOT)} names tests that do not exist: {missing}"


def test_the_link_checker_sees_links():
    # Guard against a regex that silently matches nothing.
    readme_links = _links(ROOT / "README.md")
    assert "docs/synthetic.md" in readme_links and len(readme_links) >= 8
