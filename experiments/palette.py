"""One table of colours, labels and file settings for every figure (``mmenv compare`` and ``mmenv bench``).

A colour keeps one meaning across every figure of the package:

* **modalities** by role: the synthetic family's ``strong`` modality is always orange and its
  ``weak`` one(s) always teal/purple/pink, whatever their position in the environment's
  modality order (:data:`ROLE_COLORS`); other modality names take the remaining colours of
  the same ColorBrewer Dark2 palette in order of first appearance;
* **policies** by name: every reference policy has its fixed colour (:data:`POLICY_COLORS`,
  Uniform grey, Oracle black), agents take colours from :data:`AGENT_COLORS`, and policies
  the table does not know take the remaining colours in order of first appearance;
* the two palettes are disjoint, so a colour never means a modality in one figure and a
  policy in another.

Labels are the names a paper uses (:func:`policy_label`): ``dus-h`` -> "DUS-H", ``fixed`` ->
"Fixed ratio (MLA-HB)", ``agent:ppo`` -> "Across-run agent (ppo)". Every figure is written
as PNG (:data:`DPI` dots per inch) and PDF (:data:`VECTOR_FORMAT`) side by side
(:func:`save_figure`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["DPI", "VECTOR_FORMAT", "ROLE_COLORS", "EXTRA_MODALITY_COLORS", "MODALITY_COLORS", "POLICY_COLORS",
           "AGENT_COLORS", "EXTRA_POLICY_COLORS", "UNIFORM_COLOR", "SPLIT_COLORS", "POLICY_LABELS",
           "policy_label", "modality_color_map", "policy_color_map", "save_figure"]

DPI = 200
VECTOR_FORMAT = "pdf"

#: Modality roles of the synthetic family (mmenv.datasets.make_synthetic names them so).
ROLE_COLORS = {"strong": "#d95f02", "weak": "#1b9e77", "weak1": "#1b9e77", "weak2": "#7570b3",
               "weak3": "#e7298a"}
#: Colours for other modality names, by first appearance (rest of ColorBrewer Dark2).
EXTRA_MODALITY_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d")
MODALITY_COLORS = EXTRA_MODALITY_COLORS

UNIFORM_COLOR = "#8c8c8c"
#: Fixed colour per reference policy (keys: compare's policy names and bench's row labels).
POLICY_COLORS = {"uniform": UNIFORM_COLOR, "oracle": "#000000", "tuned-constant": "#8c564b",
                 "dus-h": "#1f77b4", "fixed": "#d62728", "fixed-ratio": "#d62728", "discrepancy": "#17becf",
                 "reinforce": "#bcbd22", "paper-online": "#bcbd22"}
#: Agents trained across runs (bench rows ``agent:<label>``; saved agents in compare).
AGENT_COLORS = ("#9467bd", "#5b2c83", "#c5b0d5", "#7b4173")
#: Policies the table does not know, in order of first appearance.
EXTRA_POLICY_COLORS = ("#393b79", "#637939", "#843c39", "#3182bd", "#31a354", "#756bb1")
#: Headroom figure: train vs test instances.
SPLIT_COLORS = {"train": "#3182bd", "test": "#e6550d"}

#: Human labels of the reference policies and benchmark rows.
POLICY_LABELS = {"uniform": "Uniform", "oracle": "Oracle", "tuned-constant": "Tuned constant", "dus-h": "DUS-H",
                 "fixed": "Fixed ratio (MLA-HB)", "fixed-ratio": "Fixed ratio (MLA-HB)",
                 "discrepancy": "DUS w/o RL", "reinforce": "Online REINFORCE (paper)",
                 "paper-online": "Online REINFORCE (paper)", "schedule": "Schedule"}


def _is_agent(policy: str) -> bool:
    return policy.startswith("agent:") or policy.endswith((".pt", ".zip"))


def policy_label(policy: str) -> str:
    """The human label of a policy name or benchmark row (unknown names are returned as they are).

    ``agent:<label>`` -> "Across-run agent (<label>)"; a saved agent file -> "Agent (<file stem>)";
    ``<policy>@<order>`` (compare's sample orders) -> "<label> @ <order>".
    """
    if policy.startswith("agent:"):
        return f"Across-run agent ({policy.split(':', 1)[1]})"
    if "@" in policy:
        base, order = policy.rsplit("@", 1)
        return f"{policy_label(base)} @ {order}"
    if policy.endswith((".pt", ".zip")):
        return f"Agent ({Path(policy).stem})"
    return POLICY_LABELS.get(policy, policy)


def modality_color_map(names: Iterable[str]) -> dict[str, str]:
    """One colour per modality name: by role when the name is one, else by first appearance."""
    out: dict[str, str] = {}
    taken = set()
    rest = []
    for name in names:
        if name in out or name in rest:
            continue
        if name in ROLE_COLORS:
            out[name] = ROLE_COLORS[name]
            taken.add(ROLE_COLORS[name])
        else:
            rest.append(name)
    free = [c for c in EXTRA_MODALITY_COLORS if c not in taken] or list(EXTRA_MODALITY_COLORS)
    for i, name in enumerate(rest):
        out[name] = free[i % len(free)]
    return out


def policy_color_map(policies: Iterable[str]) -> dict[str, str]:
    """One colour per policy: the fixed one of the table, agents from :data:`AGENT_COLORS`, others in order."""
    out: dict[str, str] = {}
    agents = others = 0
    for p in policies:
        if p in out:
            continue
        base = p.rsplit("@", 1)[0] if "@" in p else p
        if base in POLICY_COLORS and base == p:
            out[p] = POLICY_COLORS[base]
        elif _is_agent(base):
            out[p] = AGENT_COLORS[agents % len(AGENT_COLORS)]
            agents += 1
        else:
            out[p] = EXTRA_POLICY_COLORS[others % len(EXTRA_POLICY_COLORS)]
            others += 1
    return out


def save_figure(fig: Any, path: str | Path, tight: bool = True) -> Path:
    """Write ``path`` (PNG at :data:`DPI`) and the same figure as a PDF beside it; close the figure."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    fig.savefig(path.with_suffix(f".{VECTOR_FORMAT}"))
    plt.close(fig)
    return path
