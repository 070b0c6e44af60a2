"""Estimators and reward shapers by name.

An **estimator** is a pure function ``fn(batch, config) -> np.ndarray``: one advantage per
batch row (``level="step"``) or per policy token on the batch's flat token axis
(``level="token"``, GTPO-entropy). A **shaper** is a callable ``shaper(batch) -> batch`` that
rewrites reward columns before an estimator runs (OTC, invalid-action penalty, turn rewards).

Each entry declares what it needs beyond the rollout's columns — ``needs`` ⊆ {``"token_entropy"``
(per-token entropies of the sampling policy), ``"action_texts"`` (each step's action text)} —
and the rollouts it works on: ``tree_only`` (Tree-GRPO's intra-tree term needs several leaves
per tree) or ``chain_only`` (discounted step returns, anchor states and token positions are
defined along one path). :func:`requirements` combines an estimator, its config and the shapers
into one :class:`Requirements`; the trainer derives what to compute from it and the training
config validation rejects impossible combinations with one line.

Names follow the reference (§0.3); there is never a bare ``gtpo``.

    >>> from agentrl.algos import get_estimator
    >>> adv = get_estimator("gigpo")(batch, gamma=0.9, mode="mean_norm")   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from agentrl.algos.batch import StepBatch


class AlgoConfig(BaseModel):
    """Base for estimator and shaper configs: unknown keys are an error, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def make_config(
    cls: type[AlgoConfig], config: AlgoConfig | dict[str, Any] | None, overrides: dict[str, Any], owner: str
):
    """Build ``cls`` from a config object or dict plus keyword overrides, with one readable error."""
    values: dict[str, Any] = {}
    if isinstance(config, cls):
        values = config.model_dump()
    elif isinstance(config, dict):
        values = dict(config)
    elif config is not None:
        raise TypeError(f"{owner}: config must be a {cls.__name__} or a dict, got {type(config).__name__}")
    values.update(overrides)
    try:
        return cls(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(config)'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(
            f"{owner}: invalid config — {problems}. Known keys: {', '.join(cls.model_fields)}"
        ) from None


NEEDS = frozenset({"token_entropy", "action_texts"})


@dataclasses.dataclass(frozen=True)
class Requirements:
    """What an estimator + shapers need: batch inputs and the kind of rollouts.

    ``tree_only`` / ``chain_only`` name the parts that impose it (empty: no constraint).
    """

    needs: frozenset[str] = frozenset()
    tree_only: tuple[str, ...] = ()
    chain_only: tuple[str, ...] = ()

    def __or__(self, other: Requirements) -> Requirements:
        return Requirements(
            self.needs | other.needs, self.tree_only + other.tree_only, self.chain_only + other.chain_only
        )

    def check_rollouts(self, trees: bool) -> None:
        """Raise a one-line ``ValueError`` when the rollouts (trees or chains) cannot serve these parts."""
        if trees and self.chain_only:
            raise ValueError(
                f"{', '.join(self.chain_only)} works on chains only, not on tree rollouts (rollout.tree)"
            )
        if not trees and self.tree_only:
            raise ValueError(f"{', '.join(self.tree_only)} needs tree rollouts: add a rollout.tree section")


@dataclasses.dataclass(frozen=True)
class Estimator:
    """A registered advantage estimator; call it as ``est(batch, config=None, **overrides)``.

    ``needs``, ``tree_only``, ``chain_only``: see the module docstring. ``wraps`` (modifiers such
    as EMPG): the ``(name, config)`` of the estimator it runs, whose requirements it inherits.
    """

    name: str
    fn: Callable[[StepBatch, Any], np.ndarray]
    config_cls: type[AlgoConfig]
    level: Literal["step", "token"] = "step"
    needs: frozenset[str] = frozenset()
    tree_only: bool = False
    chain_only: bool = False
    wraps: Callable[[Any], tuple[str, Any]] | None = None

    def config(self, config: AlgoConfig | dict[str, Any] | None = None, **overrides: Any) -> AlgoConfig:
        return make_config(self.config_cls, config, overrides, self.name)

    def __call__(
        self, batch: StepBatch, config: AlgoConfig | dict[str, Any] | None = None, **overrides: Any
    ) -> np.ndarray:
        if not isinstance(batch, StepBatch):
            raise TypeError(f"{self.name}: expected a StepBatch, got {type(batch).__name__}")
        return self.fn(batch, self.config(config, **overrides))

    @property
    def doc(self) -> str:
        """The module docstring: formula, paper and parameters."""
        return inspect.getdoc(sys.modules[self.fn.__module__]) or ""

    def requirements(self, config: AlgoConfig | dict[str, Any] | None = None) -> Requirements:
        """This estimator's requirements under ``config`` (a wrapped estimator's included)."""
        own = Requirements(
            self.needs,
            (f"estimator {self.name!r}",) if self.tree_only else (),
            (f"estimator {self.name!r}",) if self.chain_only else (),
        )
        if self.wraps is None:
            return own
        base, base_config = self.wraps(self.config(config))
        return own | get_estimator(base).requirements(base_config)


@dataclasses.dataclass(frozen=True)
class ShaperSpec:
    """A registered reward shaper class and its config (``needs``, ``chain_only`` as for estimators)."""

    name: str
    cls: type
    config_cls: type[AlgoConfig]
    needs: frozenset[str] = frozenset()
    chain_only: bool = False

    @property
    def requirements(self) -> Requirements:
        return Requirements(self.needs, (), (f"shaper {self.name!r}",) if self.chain_only else ())

    def __call__(self, config: AlgoConfig | dict[str, Any] | None = None, **overrides: Any):
        return self.cls(make_config(self.config_cls, config, overrides, self.name))


ESTIMATORS: dict[str, Estimator] = {}
SHAPERS: dict[str, ShaperSpec] = {}


def _check_needs(owner: str, needs: frozenset[str]) -> frozenset[str]:
    needs = frozenset(needs)
    if not needs <= NEEDS:
        raise ValueError(f"{owner}: unknown needs {sorted(needs - NEEDS)}; known: {sorted(NEEDS)}")
    return needs


def register_estimator(
    name: str,
    fn: Callable[[StepBatch, Any], np.ndarray],
    config_cls: type[AlgoConfig],
    level: str = "step",
    *,
    needs: frozenset[str] = frozenset(),
    tree_only: bool = False,
    chain_only: bool = False,
    wraps: Callable[[Any], tuple[str, Any]] | None = None,
) -> Estimator:
    """Add an estimator under ``name`` (a third-party estimator registers the same way)."""
    if name in ESTIMATORS:
        raise ValueError(f"estimator {name!r} is already registered")
    if level not in ("step", "token"):
        raise ValueError(f"level must be 'step' or 'token', got {level!r}")
    if tree_only and chain_only:
        raise ValueError(f"estimator {name!r} cannot be both tree_only and chain_only")
    est = Estimator(
        name,
        fn,
        config_cls,
        level,
        _check_needs(name, needs),
        tree_only,
        chain_only,
        wraps,  # type: ignore[arg-type]
    )
    ESTIMATORS[name] = est
    return est


def register_shaper(
    name: str,
    cls: type,
    config_cls: type[AlgoConfig],
    *,
    needs: frozenset[str] = frozenset(),
    chain_only: bool = False,
) -> ShaperSpec:
    if name in SHAPERS:
        raise ValueError(f"shaper {name!r} is already registered")
    SHAPERS[name] = spec = ShaperSpec(name, cls, config_cls, _check_needs(name, needs), chain_only)
    return spec


def shaper_spec(shaper: Any) -> ShaperSpec | None:
    """The registry entry of a shaper instance (None for a plain callable shaper)."""
    return next((spec for spec in SHAPERS.values() if type(shaper) is spec.cls), None)


def requirements(
    estimator: str | Estimator,
    config: AlgoConfig | dict[str, Any] | None = None,
    shapers: Sequence[str | Any] = (),
) -> Requirements:
    """What ``estimator`` (with ``config``) after ``shapers`` needs; ``ValueError`` if they conflict.

    ``shapers``: registry names or shaper instances (plain callables need nothing).

        >>> from agentrl.algos import requirements
        >>> requirements("grpo", shapers=["gtpo_partial_credit"]).needs
        frozenset({'action_texts'})
        >>> requirements("empg", {"base": "tree_grpo"}).check_rollouts(trees=False)
        Traceback (most recent call last):
        ValueError: estimator 'tree_grpo' needs tree rollouts: add a rollout.tree section
    """
    est = get_estimator(estimator) if isinstance(estimator, str) else estimator
    total = est.requirements(config)
    for shaper in shapers:
        spec = SHAPERS.get(shaper) if isinstance(shaper, str) else shaper_spec(shaper)
        if spec is None and isinstance(shaper, str):
            raise KeyError(f"unknown shaper {shaper!r}; known: {', '.join(sorted(SHAPERS))}")
        if spec is not None:
            total = total | spec.requirements
    if total.tree_only and total.chain_only:
        raise ValueError(
            f"{', '.join(total.tree_only)} needs tree rollouts but {', '.join(total.chain_only)} works on chains only"
        )
    return total


def get_estimator(name: str) -> Estimator:
    try:
        return ESTIMATORS[name]
    except KeyError:
        hint = " ('gtpo' is ambiguous: use 'gtpo_turn' or 'gtpo_entropy')" if name == "gtpo" else ""
        raise KeyError(f"unknown estimator {name!r}{hint}; known: {', '.join(sorted(ESTIMATORS))}") from None


def get_shaper(name: str, config: AlgoConfig | dict[str, Any] | None = None, **overrides: Any):
    """A configured shaper instance, e.g. ``get_shaper("otc_grpo", c=2.0)``."""
    try:
        spec = SHAPERS[name]
    except KeyError:
        raise KeyError(f"unknown shaper {name!r}; known: {', '.join(sorted(SHAPERS))}") from None
    return spec(config, **overrides)
