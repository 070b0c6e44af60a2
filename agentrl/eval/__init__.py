"""Evaluation: run an agent on a split, score it, write a report (`agentrl eval`)."""

from agentrl.eval.agents import AgentLoadError, build_runner, check_server
from agentrl.eval.metrics import Metrics, compute_metrics, pass_at_k, per_task_table, wilson_interval
from agentrl.eval.report import render_report, write_report
from agentrl.eval.runner import (
    AgentSpec,
    EvalSettings,
    evaluate,
    load_finished,
    read_settings,
    scripted_episode_fn,
)

__all__ = [
    "AgentLoadError",
    "AgentSpec",
    "EvalSettings",
    "Metrics",
    "build_runner",
    "check_server",
    "compute_metrics",
    "evaluate",
    "load_finished",
    "pass_at_k",
    "per_task_table",
    "read_settings",
    "render_report",
    "scripted_episode_fn",
    "wilson_interval",
    "write_report",
]
