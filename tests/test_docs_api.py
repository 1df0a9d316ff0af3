"""Docs that a user copies from: the Policy protocol block runs; every field of the learner
data classes is documented."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from mmenv.learners import Batch, LearnerContext, Prediction, StepOutput

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_agents_md_policy_protocol_block_runs():
    block = next(b for b in _python_blocks((DOCS / "agents.md").read_text()) if "class Policy:" in b)
    namespace: dict = {}
    exec(compile(block, "docs/agents.md", "exec"), namespace)   # NameError before: np was not imported
    assert "Policy" in namespace


@pytest.mark.parametrize("cls", [StepOutput, Prediction, LearnerContext, Batch])
def test_learners_md_lists_every_field(cls):
    text = (DOCS / "learners.md").read_text()
    assert f"`{cls.__name__}`" in text
    for f in dataclasses.fields(cls):
        assert f"`{f.name}`" in text, f"docs/learners.md does not document {cls.__name__}.{f.name}"
