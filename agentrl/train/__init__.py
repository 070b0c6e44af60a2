"""Training: PPO-clip token loss, the learner, SFT warm start, checkpoints and the RL loop.

See ``agentrl/train/README.md``. Heavy parts (the trainer, which builds models and samplers) are
imported from their modules: ``from agentrl.train.trainer import Trainer``.
"""

from agentrl.train.checkpoint import Checkpointer
from agentrl.train.config import ConfigError, TrainConfig, load_config
from agentrl.train.learner import Learner, LoraSettings, OptimConfig, apply_lora
from agentrl.train.loss import (
    PolicyLossConfig,
    kl_penalty,
    loss_weights,
    policy_loss,
    token_logprobs_and_entropy,
)
from agentrl.train.rows import TokenRow, build_rows, pack_microbatches

__all__ = [
    "Checkpointer",
    "ConfigError",
    "Learner",
    "LoraSettings",
    "OptimConfig",
    "PolicyLossConfig",
    "TokenRow",
    "TrainConfig",
    "apply_lora",
    "build_rows",
    "kl_penalty",
    "load_config",
    "loss_weights",
    "pack_microbatches",
    "policy_loss",
    "token_logprobs_and_entropy",
]
