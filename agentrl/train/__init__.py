"""Training: PPO-clip token loss, the learner, SFT warm start, checkpoints and the RL loop.

See ``agentrl/train/README.md``. Heavy parts (the trainer, which builds models and samplers) are
imported from their modules: ``from agentrl.train.trainer import Trainer``.
"""

from agentrl._lazy import lazy_attributes
from agentrl.train.config import ConfigError, TrainConfig, load_config

# Everything else imports torch: load it on first use, so `agentrl train --help` starts fast.
__getattr__ = lazy_attributes(
    __name__,
    {
        "Checkpointer": "agentrl.train.checkpoint",
        "Learner": "agentrl.train.learner",
        "LoraSettings": "agentrl.train.learner",
        "OptimConfig": "agentrl.train.learner",
        "apply_lora": "agentrl.train.learner",
        "PolicyLossConfig": "agentrl.train.loss",
        "kl_penalty": "agentrl.train.loss",
        "loss_weights": "agentrl.train.loss",
        "policy_loss": "agentrl.train.loss",
        "token_logprobs_and_entropy": "agentrl.train.loss",
        "TokenRow": "agentrl.train.rows",
        "pack_microbatches": "agentrl.train.rows",
    },
)

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
    "kl_penalty",
    "load_config",
    "loss_weights",
    "pack_microbatches",
    "policy_loss",
    "token_logprobs_and_entropy",
]
