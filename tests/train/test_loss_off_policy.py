"""Off-policy correction (loss.off_policy: none / tis / decoupled), worked by hand on 3 tokens.

Token  π_behav  π_prox  π_θ    A    u = π_prox/π_behav   ρ = π_θ/π_prox   ρ_behav = π_θ/π_behav
  1     0.5      0.5    0.55  +1          1.0                 1.1               1.1
  2     0.2      0.3    0.45  +1          1.5                 1.5 (clip 1.2)    2.25
  3     0.1      0.3    0.27  −1          3.0 (> C = 2)       0.9               2.7

ε = 0.2, token-mean (weight 1/3 each). Per-token pg = v·max(−Aρ, −A·clip(ρ)):
  none      (ρ against π_behav, v = 1):  −1.1, −1.2, +2.7      → loss  0.4/3
  tis       (v = min(u, 2) = 1, 1.5, 2): −1.1, −1.8, +1.8      → loss −1.1/3
  decoupled (v = u if u ≤ 2 else 0):     −1.1, −1.8,  0        → loss −2.9/3
d loss / d logπ_θ (a token inside the clip contributes −A·v·ρ/3, a clipped one 0):
  none: −1.1/3, 0, +2.7/3   tis: −1.1/3, 0, +1.8/3   decoupled: −1.1/3, 0, 0
Statistics of u: mean 11/6, max 3, capped 1/3, KL(π_behav‖π_prox) = mean(u − 1 − ln u).
"""

import math

import numpy as np
import pytest
import torch

from agentrl.rollout.batch import TokenRow
from agentrl.train.config import PolicyLossConfig
from agentrl.train.learner import policy_positions
from agentrl.train.loss import loss_weights, off_policy_weights, policy_loss

BEHAV = torch.tensor([0.5, 0.2, 0.1]).log()
PROX = torch.tensor([0.5, 0.3, 0.3]).log()
THETA = torch.tensor([0.55, 0.45, 0.27]).log()
ADV = torch.tensor([1.0, 1.0, -1.0])
WEIGHTS = loss_weights(torch.ones(3), "token-mean")
CONFIG = PolicyLossConfig()


def corrected_loss(mode: str):
    """The loss as the learner computes it: rows with old_logp = π_prox and advantage v·A."""
    v, stats = off_policy_weights(PROX, BEHAV, mode, cap=2.0)
    old = BEHAV if mode == "none" else PROX
    logp = THETA.clone().requires_grad_(True)
    loss, _ = policy_loss(logp, old, v * ADV, WEIGHTS, CONFIG)
    loss.backward()
    return v, stats, float(loss.detach()), logp.grad


@pytest.mark.parametrize(
    ("mode", "weights", "loss", "grad"),
    [
        ("none", [1.0, 1.0, 1.0], 0.4 / 3, [-1.1 / 3, 0.0, 2.7 / 3]),
        ("tis", [1.0, 1.5, 2.0], -1.1 / 3, [-1.1 / 3, 0.0, 1.8 / 3]),
        ("decoupled", [1.0, 1.5, 0.0], -2.9 / 3, [-1.1 / 3, 0.0, 0.0]),
    ],
)
def test_three_tokens_by_hand(mode, weights, loss, grad):
    v, stats, got_loss, got_grad = corrected_loss(mode)
    assert v.tolist() == pytest.approx(weights, abs=1e-6)
    assert got_loss == pytest.approx(loss, abs=1e-6)
    assert got_grad.tolist() == pytest.approx(grad, abs=1e-6)
    # The statistics describe the raw weight u whatever the mode.
    assert stats["is_weight_mean"] == pytest.approx(11 / 6, abs=1e-6)
    assert stats["is_weight_max"] == pytest.approx(3.0, abs=1e-6)
    assert stats["is_capped_frac"] == pytest.approx(1 / 3)
    kl = (0.0 + (0.5 - math.log(1.5)) + (2.0 - math.log(3.0))) / 3
    assert stats["behav_prox_kl"] == pytest.approx(kl, abs=1e-6)


@pytest.mark.parametrize("mode", ["tis", "decoupled"])
def test_behaviour_equal_to_proximal_is_exactly_no_correction(mode):
    v, stats = off_policy_weights(BEHAV, BEHAV, mode, cap=2.0)
    assert torch.equal(v, torch.ones(3))
    assert stats == {"is_weight_mean": 1.0, "is_weight_max": 1.0, "is_capped_frac": 0.0, "behav_prox_kl": 0.0}
    plain = THETA.clone().requires_grad_(True)
    fixed = THETA.clone().requires_grad_(True)
    a, _ = policy_loss(plain, BEHAV, ADV, WEIGHTS, CONFIG)
    b, _ = policy_loss(fixed, BEHAV, v * ADV, WEIGHTS, CONFIG)
    a.backward()
    b.backward()
    assert float(a.detach()) == float(b.detach()) and torch.equal(plain.grad, fixed.grad)


def test_unknown_mode_is_one_line():
    with pytest.raises(ValueError, match="choose none, tis or decoupled"):
        off_policy_weights(PROX, BEHAV, "ips", cap=2.0)


class _Learner:
    """Stands in for the learner's no-grad forward: π_prox of every policy token, rows in order."""

    def __init__(self, prox):
        self.prox = np.asarray(prox, dtype=np.float64)

    def token_logprobs(self, rows):
        return [policy_positions(r.mask) for r in rows], self.prox


def test_trainer_lays_the_correction_on_the_rows():
    from agentrl.train.trainer import Trainer

    # Two rows: a prompt token (position 0) then policy tokens; row 2 has an observation (mask 0).
    rows = [
        TokenRow([5, 6, 7], [0, 1, 1], [0.0, *BEHAV[:2].tolist()], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]),
        TokenRow([5, 8, 9], [0, 0, 1], [0.0, 0.0, BEHAV[2].item()], [0.0, 0.0, 0.0], [0.0, 0.0, -1.0]),
    ]
    trainer = Trainer.__new__(Trainer)  # only the correction: no model is built
    trainer.config = type("C", (), {"loss": PolicyLossConfig(off_policy="tis", tis_cap=2.0)})()
    trainer.learner = _Learner(PROX.tolist())
    out, stats = trainer.correct_off_policy(rows)
    assert out[0].old_logp == pytest.approx([0.0, *PROX[:2].tolist()])
    assert out[0].advantage == pytest.approx([0.0, 1.0, 1.5])
    assert out[1].old_logp == pytest.approx([0.0, 0.0, PROX[2].item()])
    assert out[1].advantage_neg == pytest.approx([0.0, 0.0, -2.0])
    assert out[1].mask == rows[1].mask and out[1].input_ids == rows[1].input_ids
    assert stats["is_capped_frac"] == pytest.approx(1 / 3)

    trainer.learner = _Learner(BEHAV.tolist())  # behaviour = proximal: the rows come back unchanged
    same, _ = trainer.correct_off_policy(rows)
    assert same == rows
