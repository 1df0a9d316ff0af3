"""Agents of one's own in ``mmenv bench``: ``--agent SPEC`` on the command line, :class:`BenchAgent` in Python.

A ``SPEC`` is one of (``LABEL=SPEC`` names the agent's row; the default label is the name,
the attribute or the file's stem):

* **a registered name**: an across-run trainer (:data:`mmenv.agents.across_runs.TRAINERS`:
  ``reinforce``, ``ppo``, ``sac``, ``td3`` and any added with ``register_trainer`` or the
  ``mmenv.trainers`` entry points) is trained on each instance set's train instances
  (``--agent-runs`` training runs, else as many as the preset's agent of that algorithm, else
  its first agent's), then evaluated; a registered policy (:data:`mmenv.agents.POLICIES`, e.g.
  ``dus-h``) is evaluated as it is;
* **a Python path** ``my_pkg.module:attribute`` (imported from the installed packages,
  ``PYTHONPATH`` or the working directory): a trainer following the trainer protocol
  (:mod:`mmenv.agents.across_runs`; recognised by its ``runs`` parameter), trained like a
  registered one; or a factory returning a policy (called with no argument, or with ``m=``
  the number of modalities when it takes ``m``; it may return an :class:`mmenv.agents.Policy`,
  an SB3 model, a callable ``f(obs, info) -> proportions`` or a trained agent with ``policy``
  and ``observation``), or a :class:`~mmenv.agents.Policy` object, evaluated as it is;
* **a saved agent file**: an SB3 ``.zip`` (also one from plain ``model.save``) or an mmenv
  ``.pt``, read with the package's safe loaders (:mod:`mmenv.agents.saved`: nothing in the
  file is imported or unpickled), evaluated as it is on the test instances with its number
  of modalities (any, for a per-modality equivariant agent).

Importing a Python path runs that module's code: the user's explicit choice on the command
line. Nothing named *inside* a file the benchmark reads is imported.

Every agent is evaluated on the preset's test instances x evaluation seeds through the same
code as the preset's agents (:func:`mmenv.experiments.bench_stages.run_agents`), scored and
aggregated in the same tables. The search, reference and scoring runs are the preset's: run
keys depend on the preset's tasks, policies and seeds only, so in an output folder where the
preset ran already they are all reused (0 executed). An agent's own evaluation runs are keyed
by a digest of what it is (the file's bytes, the module's source, the trainer's settings and
train instances), so they are reused as long as the agent is unchanged.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import importlib
import inspect
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mmenv.errors import MMEnvError

from .bench_config import AgentSpec, BenchConfig
from .bench_data import BenchData
from .grid import RESULT_VERSION, slugify

__all__ = ["BenchAgent", "BenchAgentSpecError", "resolve_bench_agent", "resolve_bench_agents", "KINDS"]

#: What an ``--agent`` is: trained across runs first, a policy played as it is, a saved agent file.
KINDS = ("trainer", "policy", "file")
_LABEL_RE = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]*)=(.+)")
_PYTHON_PATH_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
_AGENT_SUFFIXES = (".zip", ".pt")


class BenchAgentSpecError(MMEnvError, ValueError):
    """An ``--agent`` that names no agent: an unknown name, a module that fails to import, a file
    that is not a saved agent, an attribute that is neither a trainer nor a policy factory."""


@dataclass
class BenchAgent:
    """One agent of one's own in a benchmark (module docstring).

    ``kind``: ``"trainer"`` (``algo`` is a registered trainer, trained for ``runs`` runs),
    ``"policy"`` (``make(m)`` returns what is played on m modalities) or ``"file"`` (``path``).
    ``fingerprint`` is what the agent's evaluation results depend on besides its label.
    """

    label: str
    text: str
    kind: str
    algo: str | None = None
    runs: int = 0
    make: Callable[[int], Any] | None = None
    path: Path | None = None
    fingerprint: str = ""
    modalities: int | None = None        # a saved agent's m (None: any)
    options: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ jobs
    def jobs(self, plan: Any) -> list[Any]:
        """The :class:`~mmenv.experiments.bench_stages.AgentJob` list of this agent on ``plan``."""
        from .bench_stages import AgentJob, agent_jobs

        if self.kind == "trainer":
            cfg = copy.copy(plan.cfg)
            cfg.agents = [self.spec()]
            jobs = agent_jobs(replace(plan, cfg=cfg))
            if not self.fingerprint:
                return jobs
            # a trainer of one's own: an edited module is another agent (trained and evaluated again)
            out = []
            for job in jobs:
                digest = hashlib.sha256(f"{job.digest}/{self.fingerprint}".encode()).hexdigest()[:10]
                out.append(replace(job, digest=digest, path=job.path.with_name(job.path.name.replace(job.digest,
                                                                                                      digest))))
            return out
        jobs = []
        for iset in plan.sets:
            groups: dict[int, list[Any]] = {}
            for inst in iset.test:
                groups.setdefault(plan.m(inst), []).append(inst)
            for m, test in sorted(groups.items()):
                if self.modalities is not None and m != self.modalities:
                    continue
                digest = self._digest(m)
                path = plan.out / "agents" / f"{slugify(iset.name)}__{slugify(self.label)}__m{m}__{digest}.agent"
                jobs.append(AgentJob(iset.name, self.spec(), m, (), tuple(test), digest, path))
        if not jobs:
            found = sorted({plan.m(i) for iset in plan.sets for i in iset.test})
            raise BenchAgentSpecError(f"agent {self.text!r} acts on {self.modalities} modalities, but the preset's "
                                      f"test instances have {found}; choose a preset with such instances (or save "
                                      "a per-modality agent: options policy: equivariant)")
        return jobs

    def spec(self) -> AgentSpec:
        """The agent as a preset agent row (a played agent: 0 training runs)."""
        if self.kind == "trainer":
            return AgentSpec(algo=str(self.algo), runs=self.runs, label=self.label, options=dict(self.options))
        return AgentSpec(algo=self.kind, runs=0, reward="none", label=self.label)

    def _digest(self, m: int) -> str:
        payload = {"agent": self.text, "kind": self.kind, "fingerprint": self.fingerprint, "m": m,
                   "version": RESULT_VERSION}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]

    # ------------------------------------------------------------------ running
    def run(self, plan: Any, data: BenchData, force: bool = False, progress: bool = True,
            ray_address: str | None = None) -> None:
        """Train (a trainer) or load, evaluate and record this agent's rows in ``data``."""
        from .bench_stages import AgentTools, resolve_agent_tools, run_agents

        try:
            if self.kind == "trainer":
                run_agents(plan, data, resolve_agent_tools(plan.cfg, ray_address=ray_address), force, progress,
                           jobs=self.jobs(plan))
                return
            from mmenv.agents.across_runs import bench_env

            for job in self.jobs(plan):
                tools = AgentTools(trainer=_Ready(self, job.m), env_factory=bench_env, loader=None)
                run_agents(plan, data, tools, force, progress, jobs=[job])
        except MMEnvError:
            raise
        except Exception as exc:  # noqa: BLE001 - the user's code: one line naming the agent
            raise BenchAgentSpecError(f"agent {self.text!r} failed: {type(exc).__name__}: {exc} (run it from Python, "
                                      "mmenv.experiments.bench.run_bench(..., agents=[...]), for the traceback)") from exc


@dataclass
class _PlayedAgent:
    """What :func:`~mmenv.experiments.bench_stages.run_agents` needs of an agent that is not trained."""

    policy: Any
    observation: str
    runs: int = 0
    curve: list[tuple[int, float]] = field(default_factory=list)


class _Ready:
    """A stand-in trainer for an agent played as it is: returns it (no training run)."""

    def __init__(self, agent: BenchAgent, m: int) -> None:
        self.agent, self.m = agent, m

    def __call__(self, algo: str, train_instances: Sequence[Any], **_: Any) -> _PlayedAgent:
        from mmenv.agents import as_policy
        from mmenv.agents.saved import TrainedAgent

        agent = self.agent
        if agent.kind == "file":
            loaded = TrainedAgent.load(str(agent.path))
            return _PlayedAgent(loaded.policy, loaded.observation)
        assert agent.make is not None
        made = agent.make(self.m)
        observation = getattr(made, "observation", None)
        policy = getattr(made, "policy", None) if isinstance(observation, str) and hasattr(made, "policy") else made
        card = getattr(policy, "card", None)
        if not isinstance(observation, str):
            observation = getattr(card, "observation", None) or "paper"
        from mmenv.wrappers import BENCH_OBSERVATIONS

        if observation not in BENCH_OBSERVATIONS:
            raise BenchAgentSpecError(f"agent {agent.text!r} reads observation {observation!r}; valid: "
                                      f"{list(BENCH_OBSERVATIONS)}")
        try:
            policy = as_policy(policy)
        except MMEnvError as exc:
            raise BenchAgentSpecError(f"agent {agent.text!r}: its factory returned no policy ({exc})") from None
        return _PlayedAgent(policy, observation)


# ---------------------------------------------------------------------- resolving a SPEC
def resolve_bench_agents(specs: Sequence[BenchAgent | str], cfg: BenchConfig,
                         runs: int | None = None) -> list[BenchAgent]:
    """Every ``--agent`` of the command line (or :class:`BenchAgent` given as it is), checked
    before any run (labels unique, also against the preset's agents)."""
    agents = [s if isinstance(s, BenchAgent) else resolve_bench_agent(s, cfg, runs) for s in specs]
    taken = {slugify(a.label): f"the preset's agent {a.label!r}" for a in cfg.agents}
    for agent in agents:
        slug = slugify(agent.label)
        if slug in taken:
            raise BenchAgentSpecError(f"agent {agent.text!r}: label {agent.label!r} is taken by {taken[slug]}; name "
                                      f"this one with --agent LABEL={agent.text}")
        taken[slug] = f"--agent {agent.text!r}"
    return agents


def resolve_bench_agent(text: str, cfg: BenchConfig, runs: int | None = None) -> BenchAgent:
    """One ``SPEC`` (module docstring) as a :class:`BenchAgent`; ``runs``: a trainer's training runs."""
    if not isinstance(text, str) or not text.strip():
        raise BenchAgentSpecError(f"--agent needs a name, a module:attribute path or a saved agent file, got {text!r}")
    text = text.strip()
    label, spec = None, text
    match = _LABEL_RE.fullmatch(text)
    if match and not Path(text).exists():
        label, spec = match.group(1), match.group(2).strip()
    path = Path(spec)
    if path.suffix in _AGENT_SUFFIXES or path.exists():
        agent = _file_agent(spec, path)
    elif _PYTHON_PATH_RE.fullmatch(spec):
        agent = _python_agent(spec, cfg, runs)
    else:
        agent = _named_agent(spec, cfg, runs)
    if label:
        agent.label = label
    agent.text = text
    return agent


def _file_agent(spec: str, path: Path) -> BenchAgent:
    from mmenv.agents.saved import read_card

    if not path.is_file():
        raise BenchAgentSpecError(f"--agent {spec}: no saved agent file there"
                                  + (" (a folder)" if path.is_dir() else ""))
    if path.suffix not in _AGENT_SUFFIXES:
        raise BenchAgentSpecError(f"--agent {spec}: not a saved agent (expected an SB3 .zip or an mmenv .pt file)")
    try:
        card = read_card(path)     # safe: JSON entries and the allow-listed tensor loader only
    except MMEnvError as exc:
        raise BenchAgentSpecError(f"--agent {spec}: not a saved agent ({exc})") from None
    m = None if card.network == "equivariant" else card.num_modalities
    return BenchAgent(label=path.stem, text=spec, kind="file", path=path, fingerprint=_sha256(path.read_bytes()),
                      modalities=m)


def _python_agent(spec: str, cfg: BenchConfig, runs: int | None) -> BenchAgent:
    module_name, _, attr = spec.partition(":")
    _import_from_working_directory()
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any failure of the user's module is one line
        raise BenchAgentSpecError(f"--agent {spec}: cannot import {module_name!r} ({type(exc).__name__}: {exc}); "
                                  "install it or put its folder on PYTHONPATH") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise BenchAgentSpecError(f"--agent {spec}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    fingerprint = _source_fingerprint(module, spec)
    from mmenv.agents import Policy

    if isinstance(obj, Policy):
        return BenchAgent(label=attr.split(".")[-1], text=spec, kind="policy", make=lambda m: obj,
                          fingerprint=fingerprint)
    if not callable(obj):
        raise BenchAgentSpecError(f"--agent {spec}: a {type(obj).__name__} is neither a trainer, a policy factory "
                                  "nor a policy")
    params = _parameters(obj)
    if "runs" in params:
        from mmenv.agents.across_runs import register_trainer

        register_trainer(spec, obj, overwrite=True)
        return BenchAgent(label=attr.split(".")[-1], text=spec, kind="trainer", algo=spec.lower(),
                          runs=_trainer_runs(spec, spec.lower(), cfg, runs), fingerprint=fingerprint)
    takes_m = "m" in params
    return BenchAgent(label=attr.split(".")[-1], text=spec, kind="policy", fingerprint=fingerprint,
                      make=(lambda m: obj(m=m)) if takes_m else (lambda m: obj()))


def _named_agent(spec: str, cfg: BenchConfig, runs: int | None) -> BenchAgent:
    from mmenv.agents import POLICIES, make_policy
    from mmenv.agents.across_runs import TRAINERS

    if spec in TRAINERS:
        algo = spec.lower()
        return BenchAgent(label=algo, text=spec, kind="trainer", algo=algo, runs=_trainer_runs(spec, algo, cfg, runs))
    if spec in POLICIES:
        return BenchAgent(label=spec.lower(), text=spec, kind="policy", make=lambda m: make_policy(spec),
                          fingerprint=spec.lower())
    names = list(TRAINERS.names()) + [n for n in POLICIES.names() if n not in TRAINERS]
    close = difflib.get_close_matches(spec.lower(), names, n=1)
    raise BenchAgentSpecError(f"--agent {spec}: unknown agent" + (f" (did you mean {close[0]!r}?)" if close else "")
                              + f"; give a registered name ({', '.join(names)}), a Python path "
                                "my_pkg.module:factory, or a saved agent file (.zip, .pt)")


def _trainer_runs(spec: str, algo: str, cfg: BenchConfig, runs: int | None) -> int:
    if runs is not None:
        return int(runs)
    same = [a for a in cfg.agents if a.algo == algo]
    if same or cfg.agents:
        return int((same or cfg.agents)[0].runs)
    raise BenchAgentSpecError(f"--agent {spec}: how many training runs? The preset has no agent to copy them "
                              "from; add --agent-runs N")


def _import_from_working_directory() -> None:
    """Let ``my_agents:factory`` find ``./my_agents.py`` as ``python -m`` would (the ``mmenv``
    script's own folder is on ``sys.path``, the working directory is not). Appended, so an
    installed module of the same name wins and nothing the package imports is shadowed."""
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.append(cwd)


def _parameters(obj: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(obj).parameters)
    except (TypeError, ValueError):
        return {}


def _source_fingerprint(module: Any, spec: str) -> str:
    """The module's source bytes (results of an edited module are not reused), else the path."""
    try:
        source = inspect.getsourcefile(module)
    except TypeError:
        source = None
    if source and Path(source).is_file():
        return _sha256(Path(source).read_bytes())
    return spec


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
