"""Permutation-equivariant (per-modality, Deep Sets) policies for REINFORCE and SB3.

Modalities have no natural order, and a task may have 2 or 3 of them. A policy that reads the
concatenated observation learns about "modality 0" and "modality 1" separately and needs a
network per m. Here one shared network scores each modality from its own features plus a
pooled summary of all of them (Deep Sets, Zaheer et al. 2017)::

    e_j   = phi(x_j)                          x_j: modality j's features (k values)
    pool  = mean_j e_j                        order-free summary
    s_j   = rho([e_j, pool, globals])         one score per modality
    p     = softmax(s)  or  Dirichlet(softplus(s))

so permuting the modalities of the observation permutes the scores (and proportions), and
the same weights run on any number of modalities. It holds bit for bit, not only up to float
rounding: the pooled mean sums a *sorted* copy of the embeddings (:func:`invariant_sum`), and
the layers applied to each modality (:class:`RowLinear`) compute every row with the same
elementwise product and sum, where a matrix product's blocking can round a row differently
depending on its position.

The observation must be laid out per modality: ``(m, k, g)`` = m blocks of k features, then
g global features (:func:`mmenv.observations.observation_layout`: ``observation="modal"``,
``(m, 10, 1)``, the one meant for this; ``"paper"`` is ``(m, 1, 0)``).

* REINFORCE: ``ReinforcePolicy(policy="equivariant")`` (a Dirichlet over the scores'
  softplus); across runs ``train_across_runs("reinforce", ..., observation="modal",
  policy="equivariant")``.
* SB3: :class:`EquivariantActorCriticPolicy` (PPO, A2C: the Gaussian mean of modality j is
  its score, one shared log-std) and :class:`EquivariantSACPolicy` (SAC: mean and log-std of
  modality j from its own two scores; the critics pool per-modality (feature, action) pairs).
  With the softmax action space the proportions are a softmax of the actions, so they are
  equivariant too. ``make_sb3_agent(algo, env, policy="equivariant")`` or
  ``train_across_runs(algo, ..., policy="equivariant")`` pick them; with SB3 directly::

      PPO(EquivariantActorCriticPolicy, env, policy_kwargs={"layout": (10, 1)})

  :class:`DeepSetsExtractor` is the same body as an SB3 features extractor (per-modality
  embeddings and the pooled summary, flattened) for custom heads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from stable_baselines3.common.policies import ActorCriticPolicy, ContinuousCritic
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.sac.policies import LOG_STD_MAX, LOG_STD_MIN, Actor, SACPolicy
from torch import nn

from .policy import PolicyError

__all__ = ["CONTRAST_EPS", "contrast", "RowLinear", "DeepSetsScorer", "LinearSetScorer", "EquivariantDirichletNet",
           "invariant_sum", "split_modalities",
           "DeepSetsExtractor", "EquivariantActorCriticPolicy", "EquivariantSACPolicy", "equivariant_policy_class",
           "is_equivariant_policy", "layout_of"]


def invariant_sum(x: torch.Tensor, dim: int, keepdim: bool = False) -> torch.Tensor:
    """``x.sum(dim)`` over a sorted copy: the result does not depend on the order along ``dim``, bit for bit."""
    return x.sort(dim=dim).values.sum(dim=dim, keepdim=keepdim)


def split_modalities(obs: torch.Tensor, k: int, g: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[..., m*k + g]`` -> per-modality ``[..., m, k]`` and global ``[..., g]``."""
    n = obs.shape[-1]
    if k < 1 or g < 0 or n < g + k or (n - g) % k:
        raise PolicyError(f"an observation of length {n} is not laid out as m blocks of {k} per-modality features "
                          f"plus {g} global ones (use observation='modal', or the layout it was trained on)")
    m = (n - g) // k
    x = torch.nan_to_num(obs[..., : m * k], nan=0.0, posinf=0.0, neginf=0.0).reshape(*obs.shape[:-1], m, k)
    glob = torch.nan_to_num(obs[..., m * k:], nan=0.0, posinf=0.0, neginf=0.0)
    return x, glob


#: the floor of :func:`contrast`'s spread: differences far below it stay small, above it read as a sign
CONTRAST_EPS = 0.02


def contrast(x: torch.Tensor) -> torch.Tensor:
    """Each feature of each modality against the others: ``(x_j - mean) / (spread + eps)`` over the
    modalities (dim -2), with ``spread`` the standard deviation; order-free bit for bit
    (:func:`invariant_sum`). "Which modality's validation accuracy rose most" is then a value
    near +-1 whatever the feature's scale, where the raw changes are a few hundredths."""
    m = x.shape[-2]
    centred = x - invariant_sum(x, dim=-2, keepdim=True) / m
    spread = (invariant_sum(centred * centred, dim=-2, keepdim=True) / m).sqrt()
    return centred / (spread + CONTRAST_EPS)


class RowLinear(nn.Linear):
    """``nn.Linear`` computed row by row (``(x[..., None, :] * W).sum(-1) + b``): a row's result does not
    depend on its position among the others, bit for bit (a matrix product's blocking can make it do)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = (x.unsqueeze(-2) * self.weight).sum(-1)
        return out + self.bias if self.bias is not None else out


class DeepSetsScorer(nn.Module):
    """Per-modality scores ``[..., m, outputs]`` from ``[..., m, k]`` features and ``[..., g]`` globals."""

    def __init__(self, k: int, g: int, hidden: int = 64, outputs: int = 1) -> None:
        super().__init__()
        self.k, self.g, self.hidden, self.outputs = int(k), int(g), int(hidden), int(outputs)
        self.phi = nn.Sequential(RowLinear(self.k, hidden), nn.Tanh(), RowLinear(hidden, hidden), nn.Tanh())
        self.rho = nn.Sequential(RowLinear(2 * hidden + self.g, hidden), nn.Tanh())
        self.head = RowLinear(hidden, self.outputs)

    def embed(self, x: torch.Tensor, glob: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-modality hidden states ``[..., m, hidden]`` and the pooled summary ``[..., hidden]``."""
        e = self.phi(x)
        m = e.shape[-2]
        pool = invariant_sum(e, dim=-2) / m
        both = torch.cat([e, pool.unsqueeze(-2).expand_as(e), glob.unsqueeze(-2).expand(*e.shape[:-1], self.g)], -1)
        return self.rho(both), pool

    def forward(self, x: torch.Tensor, glob: torch.Tensor) -> torch.Tensor:
        h, _ = self.embed(x, glob)
        return self.head(h)


class LinearSetScorer(nn.Module):
    """The smallest equivariant scorer (``hidden=0``): ``s_j = w . [x_j, mean_i x_i, globals] + b``,
    ``2k + g + 1`` weights. With :func:`contrast` features it can express "more data for the modality
    whose validation accuracy rose most" in one weight; small enough for parameter-space search
    (:mod:`mmenv.agents.es`)."""

    def __init__(self, k: int, g: int) -> None:
        super().__init__()
        self.k, self.g = int(k), int(g)
        self.head = RowLinear(2 * self.k + self.g, 1)

    def forward(self, x: torch.Tensor, glob: torch.Tensor) -> torch.Tensor:
        m = x.shape[-2]
        pool = invariant_sum(x, dim=-2) / m
        both = torch.cat([x, pool.unsqueeze(-2).expand_as(x), glob.unsqueeze(-2).expand(*x.shape[:-1], self.g)], -1)
        return self.head(both)


class EquivariantDirichletNet(nn.Module):
    """REINFORCE's equivariant network: observation -> Dirichlet concentrations (one per modality).

    As :class:`~mmenv.agents.reinforce.DirichletPolicyNet`, the head starts at zero weights
    and a bias giving every concentration ``init_concentration``: the first actions scatter
    around the uniform split whatever the observation.
    """

    def __init__(self, k: int, g: int, hidden: int = 64, init_concentration: float = 5.0, conc_min: float = 1e-3,
                 conc_max: float = 1e3, contrast: bool = False) -> None:
        super().__init__()
        import math

        self.k, self.g, self.contrast = int(k), int(g), bool(contrast)
        width = 2 * self.k if self.contrast else self.k
        self.scorer: nn.Module = DeepSetsScorer(width, g, hidden) if hidden > 0 else LinearSetScorer(width, g)
        nn.init.zeros_(self.scorer.head.weight)
        nn.init.constant_(self.scorer.head.bias, math.log(math.expm1(init_concentration)))
        self.conc_min, self.conc_max = conc_min, conc_max

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x, glob = split_modalities(obs, self.k, self.g)
        if self.contrast:
            x = torch.cat([x, contrast(x)], dim=-1)
        scores = self.scorer(x, glob).squeeze(-1)
        return nn.functional.softplus(scores).clamp(self.conc_min, self.conc_max)


def layout_of(observation_space_or_env: Any = None, layout: Sequence[int] | None = None) -> tuple[int, int]:
    """``(k, g)``: given ``layout`` (``(k, g)`` or ``(m, k, g)``), or read from an environment's
    ``observation_layout`` (a DUSBench env, an instance-cycling env or an SB3 VecEnv of them)."""
    if layout is None and observation_space_or_env is not None:
        env = observation_space_or_env
        if hasattr(env, "get_attr"):   # an SB3 VecEnv
            try:
                layout = env.get_attr("observation_layout")[0]
            except AttributeError:
                layout = None
        else:
            try:
                layout = env.get_wrapper_attr("observation_layout")
            except AttributeError:
                layout = getattr(env, "observation_layout", None)
    if layout is None:
        raise PolicyError("the equivariant policy reads an observation laid out per modality: build the "
                          "environment with observation='modal' (mmenv/DUSBench-v0), or pass layout=(k, g)")
    values = tuple(int(v) for v in layout)
    return (values[-2], values[-1])


# ---------------------------------------------------------------------- Stable-Baselines3
class DeepSetsExtractor(BaseFeaturesExtractor):
    """SB3 features extractor: per-modality Deep Sets embeddings and their pooled summary, flattened.

    ``policy_kwargs={"features_extractor_class": DeepSetsExtractor, "features_extractor_kwargs":
    {"layout": (10, 1)}}`` with any SB3 policy. The features are ``[e_1 .. e_m, pool]`` (m + 1
    blocks of ``hidden``): equivariant as a set of blocks, but SB3's default heads read them in
    order, so for an equivariant *policy* use :class:`EquivariantActorCriticPolicy` /
    :class:`EquivariantSACPolicy`.
    """

    def __init__(self, observation_space: Any, layout: Sequence[int], hidden: int = 64) -> None:
        k, g = layout_of(layout=layout)
        n = int(observation_space.shape[0])
        m = (n - g) // k
        super().__init__(observation_space, features_dim=(m + 1) * hidden)
        self.k, self.g = k, g
        self.scorer = DeepSetsScorer(k, g, hidden)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        x, glob = split_modalities(observations, self.k, self.g)
        h, pool = self.scorer.embed(x, glob)
        return torch.cat([h.flatten(-2), pool], dim=-1)


class _ModalityLatents(nn.Module):
    """The PPO/A2C "mlp extractor": per-modality scores (the Gaussian means) and a pooled value latent."""

    def __init__(self, k: int, g: int, hidden: int) -> None:
        super().__init__()
        self.k, self.g = k, g
        self.scorer = DeepSetsScorer(k, g, hidden)
        self.value_scorer = DeepSetsScorer(k, g, hidden)
        self.latent_dim_pi = 1      # placeholders for SB3's _build; the heads are replaced
        self.latent_dim_vf = hidden

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        x, glob = split_modalities(features, self.k, self.g)
        return self.scorer(x, glob).squeeze(-1)

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        x, glob = split_modalities(features, self.k, self.g)
        _, pool = self.value_scorer.embed(x, glob)
        return pool

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)


class EquivariantActorCriticPolicy(ActorCriticPolicy):
    """PPO / A2C policy whose action for modality j is modality j's Deep Sets score.

    ``policy_kwargs``: ``layout`` (``(k, g)`` or ``(m, k, g)``, required) and ``hidden`` (64).
    The Gaussian's log-std is one shared scalar (``log_std_init``); the value is read from the
    pooled summary. Only Box actions (one per modality).
    """

    def __init__(self, observation_space: Any, action_space: Any, lr_schedule: Any, layout: Sequence[int] = (),
                 hidden: int = 64, **kwargs: Any) -> None:
        self.layout = layout_of(layout=layout or None)
        self.hidden = int(hidden)
        kwargs.setdefault("ortho_init", False)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build_mlp_extractor(self) -> None:
        k, g = self.layout
        self.mlp_extractor = _ModalityLatents(k, g, self.hidden)  # type: ignore[assignment]  # same interface

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        # Scores are the means (no per-position head), one log-std shared by the modalities.
        self.action_net = nn.Identity()
        self.log_std = nn.Parameter(torch.full((1,), float(self.log_std_init)), requires_grad=True)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1),  # type: ignore[call-arg]
                                              **self.optimizer_kwargs)  # as SB3's own _build does

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(layout=list(self.layout), hidden=self.hidden)
        return data

    def proportions_scores(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic actions (scores) for ``obs`` of any m (SB3's ``predict`` is bound to one shape)."""
        with torch.no_grad():
            features: Any = self.extract_features(obs, self.pi_features_extractor)
            return self.mlp_extractor.forward_actor(features)

    def deterministic_actions(self, obs: torch.Tensor) -> torch.Tensor:
        """What ``predict(obs, deterministic=True)`` returns before clipping, for ``obs`` of any m."""
        return self.proportions_scores(obs)


class _EquivariantActor(Actor):
    """SAC actor: modality j's mean and log-std from its own two Deep Sets outputs."""

    def __init__(self, *args: Any, layout: Sequence[int] = (), hidden: int = 64, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        k, g = layout_of(layout=layout)
        self.k, self.g = k, g
        self.scorer = DeepSetsScorer(k, g, hidden, outputs=2)
        # SB3's per-position heads are replaced by the shared scorer (get_action_dist_params).
        self.latent_pi = nn.Identity()  # type: ignore[assignment]
        self.mu = nn.Identity()
        self.log_std = nn.Identity()  # type: ignore[assignment]

    def get_action_dist_params(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        features = self.extract_features(obs, self.features_extractor)
        x, glob = split_modalities(features, self.k, self.g)
        out = self.scorer(x, glob)
        mean, log_std = out[..., 0], out[..., 1]
        return mean, torch.clamp(log_std, LOG_STD_MIN, LOG_STD_MAX), {}


class _EquivariantCritic(nn.Module):
    """SAC critics: Q(s, a) from the pooled per-modality embeddings of (features_j, a_j) — order-free."""

    def __init__(self, k: int, g: int, hidden: int, n_critics: int) -> None:
        super().__init__()
        self.k, self.g = k, g
        self.scorers = nn.ModuleList([DeepSetsScorer(k + 1, g, hidden) for _ in range(n_critics)])
        self.heads = nn.ModuleList([RowLinear(hidden, 1) for _ in range(n_critics)])

    def forward(self, features: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x, glob = split_modalities(features, self.k, self.g)
        xa = torch.cat([x, actions.unsqueeze(-1)], dim=-1)
        out = []
        for scorer, head in zip(self.scorers, self.heads):
            assert isinstance(scorer, DeepSetsScorer)  # built above
            _, pool = scorer.embed(xa, glob)
            out.append(head(pool))
        return tuple(out)


class _EquivariantContinuousCritic(ContinuousCritic):
    def __init__(self, *args: Any, layout: Sequence[int] = (), hidden: int = 64, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        k, g = layout_of(layout=layout)
        self.q_networks = nn.ModuleList()  # type: ignore[assignment]  # replaced by the order-free critics
        self.sets = _EquivariantCritic(k, g, hidden, self.n_critics)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch.set_grad_enabled(not self.share_features_extractor):
            features = self.extract_features(obs, self.features_extractor)
        return self.sets(features, actions)

    def q1_forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            features = self.extract_features(obs, self.features_extractor)
        return self.sets(features, actions)[0]


class EquivariantSACPolicy(SACPolicy):
    """SAC policy with the equivariant actor and order-free critics (``policy_kwargs``: ``layout``, ``hidden``)."""

    def __init__(self, observation_space: Any, action_space: Any, lr_schedule: Any, layout: Sequence[int] = (),
                 hidden: int = 64, **kwargs: Any) -> None:
        self.layout = layout_of(layout=layout or None)
        self.hidden = int(hidden)
        kwargs.setdefault("net_arch", [])
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def make_actor(self, features_extractor: Any = None) -> Any:
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        return _EquivariantActor(layout=self.layout, hidden=self.hidden, **actor_kwargs).to(self.device)

    def make_critic(self, features_extractor: Any = None) -> Any:
        critic_kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        return _EquivariantContinuousCritic(layout=self.layout, hidden=self.hidden, **critic_kwargs).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(layout=list(self.layout), hidden=self.hidden)
        return data

    def deterministic_actions(self, obs: torch.Tensor) -> torch.Tensor:
        """What ``predict(obs, deterministic=True)`` returns for ``obs`` of any m (a ``Box(-1, 1)``
        action space: SAC's squashed mean needs no rescaling)."""
        with torch.no_grad():
            return self.actor(obs, deterministic=True)


def equivariant_policy_class(algo: str) -> type:
    """The equivariant SB3 policy class for ``algo`` (``ppo``, ``a2c``, ``sac``)."""
    key = str(algo).lower()
    if key in ("ppo", "a2c"):
        return EquivariantActorCriticPolicy
    if key == "sac":
        return EquivariantSACPolicy
    raise PolicyError(f"no equivariant SB3 policy for {algo!r}: use ppo, a2c or sac (or reinforce, "
                      "ReinforcePolicy(policy='equivariant'))")


def is_equivariant_policy(policy: Any) -> bool:
    return isinstance(policy, (EquivariantActorCriticPolicy, EquivariantSACPolicy))
