"""Estimators and reward shapers by name.

An **estimator** is a pure function ``fn(batch, config) -> np.ndarray``: one advantage per
batch row (``level="step"``) or per policy token on the batch's flat token axis
(``level="token"``, GTPO-entropy). A **shaper** is a callable ``shaper(batch) -> batch`` that
rewrites reward columns before an estimator runs (OTC, invalid-action penalty, turn rewards).

Names follow the reference (§0.3); there is never a bare ``gtpo``.

    >>> from agentrl.algos import get_estimator
    >>> adv = get_estimator("gigpo")(batch, gamma=0.9, mode="mean_norm")   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from collections.abc import Callable
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


@dataclasses.dataclass(frozen=True)
class Estimator:
    """A registered advantage estimator; call it as ``est(batch, config=None, **overrides)``."""

    name: str
    fn: Callable[[StepBatch, Any], np.ndarray]
    config_cls: type[AlgoConfig]
    level: Literal["step", "token"] = "step"

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


@dataclasses.dataclass(frozen=True)
class ShaperSpec:
    """A registered reward shaper class and its config."""

    name: str
    cls: type
    config_cls: type[AlgoConfig]

    def __call__(self, config: AlgoConfig | dict[str, Any] | None = None, **overrides: Any):
        return self.cls(make_config(self.config_cls, config, overrides, self.name))


ESTIMATORS: dict[str, Estimator] = {}
SHAPERS: dict[str, ShaperSpec] = {}


def register_estimator(
    name: str, fn: Callable[[StepBatch, Any], np.ndarray], config_cls: type[AlgoConfig], level: str = "step"
) -> Estimator:
    """Add an estimator under ``name`` (a third-party estimator registers the same way)."""
    if name in ESTIMATORS:
        raise ValueError(f"estimator {name!r} is already registered")
    if level not in ("step", "token"):
        raise ValueError(f"level must be 'step' or 'token', got {level!r}")
    ESTIMATORS[name] = est = Estimator(name, fn, config_cls, level)  # type: ignore[arg-type]
    return est


def register_shaper(name: str, cls: type, config_cls: type[AlgoConfig]) -> ShaperSpec:
    if name in SHAPERS:
        raise ValueError(f"shaper {name!r} is already registered")
    SHAPERS[name] = spec = ShaperSpec(name, cls, config_cls)
    return spec


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
