"""The training configuration: typed pydantic sections, loaded from YAML, errors that name the field.

Every field has a default, and the defaults *are* the embedded CPU run (``agentrl train`` with no
file): a tiny random-init model, an SFT warm start on the maze's oracle demonstrations, then
GiGPO. A YAML file only lists what it changes; ``--set section.key=value`` overrides one field
from the command line. Unknown keys are errors (a typo never silently falls back to a default).

    cfg = load_config("examples/gigpo_maze.yaml", overrides=["seed=1", "optim.lr=3e-4"])
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agentrl.cluster.config import ClusterConfig
from agentrl.rollout.config import TreeConfig

Aggregation = Literal["token-mean", "seq-mean"]
KLEstimator = Literal["k1", "k2", "k3"]
OffPolicy = Literal["none", "tis", "decoupled"]
Precision = Literal["auto", "fp32", "bf16"]


class PolicyLossConfig(BaseModel):
    """Hyper-parameters of the policy loss (defaults follow the GiGPO reference scripts)."""

    model_config = ConfigDict(extra="forbid")

    clip_low: float = Field(default=0.2, gt=0.0, lt=1.0, description="ε_low: ratio floor is 1 − ε_low.")
    clip_high: float = Field(default=0.2, gt=0.0, description="ε_high: ratio ceiling is 1 + ε_high (DAPO clip-higher).")
    dual_clip: float | None = Field(
        default=None, gt=1.0, description="c of dual-clip PPO: caps the loss of negative-advantage tokens at −c·A."
    )
    kl_coef: float = Field(default=0.0, ge=0.0, description="β_kl: weight of KL(π_θ ‖ π_ref); 0 disables the reference.")
    kl_estimator: KLEstimator = "k3"
    entropy_coef: float = Field(default=0.0, ge=0.0, description="β_ent: weight of the entropy bonus.")
    negative_weight: float = Field(
        default=1.0, ge=0.0, description="λ⁻: weight of the negative-advantage part of the policy term (1: PPO; "
        "below 1 pushes failures down less than successes up, which sharpens a noisy warm start)."
    )
    aggregation: Aggregation = "token-mean"
    off_policy: OffPolicy = Field(
        default="none",
        description="Correction for stale rollouts (agentrl/train/loss.py): none (ratio against the behaviour "
        "policy), tis (clip around the learner's pre-update policy, truncated behaviour weight) or decoupled "
        "(AReaL's decoupled PPO: tokens whose behaviour weight exceeds tis_cap are dropped).",
    )
    tis_cap: float = Field(default=2.0, ge=1.0, description="C: cap of the behaviour weight π_prox/π_behav.")

    @model_validator(mode="after")
    def _dual_clip_above_ceiling(self) -> PolicyLossConfig:
        if self.dual_clip is not None and self.dual_clip <= 1.0 + self.clip_high:
            raise ValueError(f"dual_clip ({self.dual_clip}) must exceed 1 + clip_high ({1 + self.clip_high})")
        return self


class LoraSettings(BaseModel):
    """LoRA adapters (``peft.LoraConfig``); ``target_modules`` "all-linear" adapts every linear layer."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(default=16, ge=1)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    target_modules: list[str] | str = "all-linear"


class OptimConfig(BaseModel):
    """Optimizer and update schedule of the policy."""

    model_config = ConfigDict(extra="forbid")

    lr: float = Field(default=1e-6, gt=0.0)
    weight_decay: float = Field(default=0.0, ge=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = Field(default=0, ge=0, description="Linear learning-rate warm-up (optimizer steps).")
    max_grad_norm: float | None = Field(default=1.0, gt=0.0, description="Clip the global gradient norm (None: off).")
    ppo_epochs: int = Field(default=1, ge=1, description="Passes over each rollout batch.")
    minibatches: int = Field(default=1, ge=1, description="Optimizer steps per PPO epoch.")
    micro_batch_tokens: int = Field(default=8192, ge=1, description="Padded token slots per forward pass.")
    precision: Precision = "auto"


class ConfigError(ValueError):
    """A configuration problem; the message names the file and the field."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TinyModelSpec(Section):
    """Size of the random-init Llama built when ``model.name`` is ``tiny``."""

    hidden_size: int = Field(default=64, ge=8)
    num_layers: int = Field(default=2, ge=1)
    num_heads: int = Field(default=4, ge=1)
    intermediate_size: int = Field(default=128, ge=8)
    vocab_size: int = Field(default=512, ge=300, description="Byte-level BPE vocabulary trained at start-up.")
    initializer_range: float = Field(
        default=0.1, gt=0.0,
        description="Std of the normal weight init (0.1: the tiny model reads its input; see agentrl/train/README.md).",
    )


class ModelSection(Section):
    name: str = Field(
        default="tiny",
        description="'tiny' (random init, no download), 'smollm2-135m-instruct' (scripts/get_smollm2.sh), a HF id or path.",
    )
    tiny: TinyModelSpec = TinyModelSpec()
    backend: Literal["hf", "vllm"] = Field(default="hf", description="Sampler: in-process transformers or vLLM.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto", description="Weights dtype: auto = bfloat16 on a CUDA GPU that supports it, else float32."
    )
    lora: LoraSettings | None = None
    max_batch_size: int = Field(default=64, ge=1, description="Sequences the in-process sampler decodes together.")
    torch_threads: int = Field(
        default=0, ge=0,
        description="CPU threads of torch (0: auto = half the cores this process may use, at least 1, at most 8).",
    )
    gpu_memory_utilization: float = Field(default=0.4, gt=0.0, lt=1.0, description="vLLM's share of GPU memory.")


class EnvSection(Section):
    id: str = "agentrl/Maze-v0"
    options: dict[str, Any] = Field(
        default_factory=lambda: {"size": 3, "wall_density": 0.2, "num_tasks": 8, "max_turns": 6}
    )


class RolloutSection(Section):
    groups_per_step: int = Field(default=4, ge=1, description="Tasks per RL step.")
    group_size: int = Field(default=8, ge=1, description="Rollouts per task (the GRPO/GiGPO group).")
    temperature: float = Field(default=1.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(default=16, ge=1, description="Token budget of one agent turn.")
    context: Literal["full", "window"] = Field(default="window", description="Chat context mode of the renderer.")
    history_window: int = Field(default=0, ge=0, description="(action, observation) pairs kept in window mode.")
    concurrency: int = Field(default=64, ge=1, description="Episodes in flight at once.")
    strict: bool = Field(
        default=True,
        description="A non-infra exception in an episode (a bug) fails the run with its traceback; "
        "false: it is logged and the episode masked.",
    )
    tree: TreeConfig | None = Field(
        default=None,
        description="Tree-GRPO tree rollouts (M trees, L rounds, N expansions, budgets) instead of "
        "group_size chains; required by tree-only estimators.",
    )
    max_staleness: int | None = Field(
        default=2, ge=0,
        description="mode async: no group is trained more than this many policy versions after it was started "
        "(None: unbounded).",
    )
    dynamic_sampling: bool = Field(
        default=False,
        description="DAPO dynamic sampling: skip groups whose valid members' rewards are all equal and keep "
        "sampling until groups_per_step informative groups are in the batch.",
    )
    dynamic_sampling_max_draws: int = Field(
        default=3, ge=1,
        description="With dynamic_sampling: at most this × groups_per_step groups are drawn for one step; "
        "once (this − 1) × groups_per_step were skipped, groups are kept whatever their rewards.",
    )


class ShaperEntry(Section):
    name: str
    config: dict[str, Any] = Field(default_factory=dict)


class AlgoSection(Section):
    estimator: str = "gigpo"
    config: dict[str, Any] = Field(
        default_factory=dict, description="Estimator parameters (see its module docstring)."
    )
    shapers: list[ShaperEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_and_valid(self) -> AlgoSection:
        from agentrl.algos import get_estimator, get_shaper, requirements

        try:
            get_estimator(self.estimator).config(self.config)
        except KeyError as exc:
            raise ValueError(f"estimator: {exc.args[0]}") from None
        except ValueError as exc:
            raise ValueError(f"config: {exc}") from None
        for i, entry in enumerate(self.shapers):
            try:
                get_shaper(entry.name, entry.config)
            except (KeyError, ValueError) as exc:
                raise ValueError(f"shapers.{i}: {exc.args[0]}") from None
        try:  # what the parts need must fit together (e.g. a tree-only estimator, a chain-only shaper)
            requirements(self.estimator, self.config, [entry.name for entry in self.shapers])
        except KeyError as exc:  # a wrapped estimator (empg's base) that does not exist
            raise ValueError(f"config: {exc.args[0]}") from None
        except ValueError as exc:
            raise ValueError(f"shapers: {exc}") from None
        return self


class SFTSection(Section):
    """Supervised warm start on the env's oracle demonstrations (0 episodes: off)."""

    episodes: int = Field(default=64, ge=0)
    steps: int = Field(
        default=24, ge=1, description="Optimizer steps (batches of batch_rows), whatever the rows per episode."
    )
    demonstrator: Literal["oracle", "random"] = Field(
        default="oracle", description="Imitate the env's oracle, or its random valid actions (teaches the format only)."
    )
    batch_rows: int = Field(default=32, ge=1, description="Sequences per optimizer step.")
    lr: float = Field(default=3e-3, gt=0.0)


class EvalSection(Section):
    every: int = Field(default=5, ge=0, description="Evaluate every N RL steps (0: only at start and end).")
    episodes: int = Field(default=64, ge=1)
    split: Literal["train", "dev", "test"] = "train"
    temperature: float = Field(default=1.0, ge=0.0, description="Sampling temperature of evaluation episodes.")
    greedy: bool = Field(default=True, description="Also evaluate greedily (temperature 0): eval/greedy_success.")


class CheckpointSection(Section):
    every: int = Field(default=5, ge=1, description="Save every N RL steps (and at the end).")
    keep: int = Field(default=2, ge=1)


class TrainConfig(Section):
    seed: int = 0
    output_dir: str = "runs/default"
    steps: int = Field(default=40, ge=0, description="RL steps (one rollout batch + one policy update each).")
    mode: Literal["sync", "one_step_off", "async"] = Field(
        default="sync",
        description="one_step_off: roll out step k+1 while the learner trains on step k; async: rollouts never "
        "stop, groups stream in under rollout.max_staleness.",
    )
    model: ModelSection = ModelSection()
    env: EnvSection = EnvSection()
    # 8 tasks per step with KL 0.1 (tuning runs in agentrl/train/README.md): with 4 tasks and KL 0.05
    # the maze climbed to 0.73 then fell back as entropy grew; 8 + 0.1 climbed steadily to 0.80-0.92.
    rollout: RolloutSection = RolloutSection(groups_per_step=8)
    # GiGPO's invalid-action penalty as a discounted step reward (see agentrl/train/README.md).
    algo: AlgoSection = AlgoSection(config={"penalty_mode": "discounted"})
    loss: PolicyLossConfig = PolicyLossConfig(kl_coef=0.1)
    # 4 optimizer steps per RL step, anchored to the warm start by a KL term. Measured on the maze:
    # 1 step per RL step at lr 5e-4 barely moved the policy in 12 steps; 8 steps at lr 1e-3 without
    # KL collapsed it (entropy 0.6 → 4, turns cut by max_tokens, success → 0 in 4 steps).
    optim: OptimConfig = OptimConfig(lr=3e-4, ppo_epochs=4, minibatches=4, micro_batch_tokens=16384)
    # 24 SFT steps on demos that cover every maze evenly: a start of 0.28-0.34 (seeds 0, 1) that RL
    # takes past 0.8 in 40 steps; 28 steps started at 0.40-0.45 (agentrl/train/README.md).
    sft: SFTSection = SFTSection()
    eval: EvalSection = EvalSection()
    checkpoint: CheckpointSection = CheckpointSection()
    tensorboard: bool = True
    cluster: ClusterConfig = Field(
        default_factory=ClusterConfig, description="Where rollouts run: one process (address null) or a Ray cluster."
    )

    @model_validator(mode="after")
    def _rollouts_fit_the_estimator(self) -> TrainConfig:
        from agentrl.algos.registry import requirements

        needs = requirements(self.algo.estimator, self.algo.config, [s.name for s in self.algo.shapers])
        try:
            needs.check_rollouts(trees=self.rollout.tree is not None)
        except ValueError as exc:
            raise ValueError(f"algo: {exc}") from None
        if self.mode == "async" and self.rollout.tree is not None:
            raise ValueError("mode: async streams chains; tree rollouts train in mode sync or one_step_off")
        if self.rollout.tree is not None and self.loss.aggregation != "token-mean":
            raise ValueError("loss.aggregation: tree rollouts train with token-mean (a shared prefix is one sequence)")
        return self


def _format(exc: ValidationError, source: str) -> str:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        head, sep, rest = msg.partition(": ")
        if sep and re.fullmatch(r"[A-Za-z_][\w.]*", head):  # a validator naming a sub-field
            loc, msg = f"{loc}.{head}", rest
        problems.append(f"  {loc}: {msg}")
    return f"{source}: invalid training config\n" + "\n".join(problems)


def _apply_override(data: dict[str, Any], override: str) -> None:
    key, sep, raw = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {override!r}: expected section.key=value")
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {override!r}: the value is not valid YAML ({getattr(exc, 'problem', exc)})") from None
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {override!r}: {part} is not a section")
    node[parts[-1]] = value


# A free-form mapping that belongs to the value of a sibling field: the preset's estimator
# parameters are GiGPO's, its env options the maze's; they do not carry over to another choice.
_BOUND_TO = {("algo", "config"): "estimator", ("env", "options"): "id"}


def _merge(default: dict[str, Any], given: dict[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    """``default`` with ``given`` laid over it: mappings merge key by key, any other value replaces."""
    merged = dict(default)
    for (section, field), key in _BOUND_TO.items():
        if path == (section,) and key in given and given[key] != default.get(key):
            merged[field] = {}
    for key, value in given.items():
        base = merged.get(key)
        merged[key] = _merge(base, value, (*path, key)) if isinstance(value, dict) and isinstance(base, dict) else value
    return merged


def _merge_into_default(data: dict[str, Any]) -> dict[str, Any]:
    """The full embedded default with the file's sections and the overrides merged into it.

    Validating ``data`` alone would build a partly given section from the section class's plain
    field defaults, silently dropping the preset's (``--set optim.lr=1e-3`` turned minibatches
    4 → 1); merging first keeps every field that was not given.
    """
    return _merge(TrainConfig().model_dump(), data)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read ``path`` (YAML; None: the embedded default), apply ``key=value`` overrides, validate."""
    data: dict[str, Any] = {}
    source = "default config"
    if path is not None:
        source = str(path)
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        data = loaded or {}
    for override in overrides:
        _apply_override(data, override)
    try:
        return TrainConfig.model_validate(_merge_into_default(data))
    except ValidationError as exc:
        raise ConfigError(_format(exc, source)) from None
