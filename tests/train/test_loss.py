"""PPO-clip loss: hand-worked values for every term and aggregation mode."""

import math

import pytest
import torch

from agentrl.train.loss import (
    PolicyLossConfig,
    kl_penalty,
    loss_weights,
    policy_loss,
    token_logprobs_and_entropy,
)

# Four tokens in two rows ([t1, t2, t3] and [t4, pad]); ε = 0.2.
#   t1: A = +1, ρ = 0.75/0.5 = 1.5 → max(−1.5, −1.2) = −1.2   (clipped)
#   t2: A = −1, ρ = 0.25/0.5 = 0.5 → max(+0.5, +0.8) = +0.8   (clipped)
#   t3: A = −2, ρ = 0.4/0.1 = 4    → max(+8,  +2.4) = +8     (not clipped; dual clip c=3 caps it at 6)
#   t4: A = +0.5, ρ = 1            → −0.5


def batch():
    logp = torch.log(torch.tensor([[0.75, 0.25, 0.4], [0.3, 0.9, 0.9]], dtype=torch.float64))
    old = torch.log(torch.tensor([[0.5, 0.5, 0.1], [0.3, 0.2, 0.2]], dtype=torch.float64))
    adv = torch.tensor([[1.0, -1.0, -2.0], [0.5, 7.0, 7.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    return logp.requires_grad_(), old, adv, mask


def test_token_mean_hand_worked():
    logp, old, adv, mask = batch()
    loss, stats = policy_loss(logp, old, adv, loss_weights(mask, "token-mean").double(), PolicyLossConfig())
    assert loss.item() == pytest.approx((-1.2 + 0.8 + 8 - 0.5) / 4)
    assert stats["clip_frac"].item() == pytest.approx(2 / 4)
    loss.backward()
    # Clipped tokens get no gradient; t3: d(−Aρ)/dlogp = −Aρ = 8, t4: −0.5; weight 1/4; padding 0.
    expected = torch.tensor([[0.0, 0.0, 2.0], [-0.125, 0.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(logp.grad, expected)


def test_seq_mean_hand_worked():
    logp, old, adv, mask = batch()
    loss, _ = policy_loss(logp, old, adv, loss_weights(mask, "seq-mean").double(), PolicyLossConfig())
    assert loss.item() == pytest.approx(((-1.2 + 0.8 + 8) / 3 + (-0.5)) / 2)


def test_dual_clip_caps_negative_advantage_loss():
    logp, old, adv, mask = batch()
    config = PolicyLossConfig(dual_clip=3.0)
    loss, stats = policy_loss(logp, old, adv, loss_weights(mask, "token-mean").double(), config)
    assert loss.item() == pytest.approx((-1.2 + 0.8 + 6 - 0.5) / 4)
    assert stats["dual_clip_frac"].item() == pytest.approx(1 / 4)


def test_clip_higher_is_asymmetric():
    logp, old, adv, mask = batch()
    # ε_high = 0.6: t1's ratio 1.5 is inside [0.8, 1.6] now, so −1.5 instead of −1.2.
    loss, _ = policy_loss(logp, old, adv, loss_weights(mask, "token-mean").double(), PolicyLossConfig(clip_high=0.6))
    assert loss.item() == pytest.approx((-1.5 + 0.8 + 8 - 0.5) / 4)


def test_negative_weight_scales_only_the_negative_advantage_tokens():
    logp, old, adv, mask = batch()
    weights = loss_weights(mask, "token-mean").double()
    # λ⁻ = 0.25: t2 +0.8 → +0.2, t3 +8 → +2; t1 (−1.2) and t4 (−0.5) unchanged.
    loss, _ = policy_loss(logp, old, adv, weights, PolicyLossConfig(negative_weight=0.25))
    assert loss.item() == pytest.approx((-1.2 + 0.2 + 2 - 0.5) / 4)
    loss.backward()
    assert torch.allclose(logp.grad, torch.tensor([[0.0, 0.0, 0.5], [-0.125, 0.0, 0.0]], dtype=torch.float64))
    # λ⁻ = 0: successes only.
    loss, _ = policy_loss(logp.detach(), old, adv, weights, PolicyLossConfig(negative_weight=0.0))
    assert loss.item() == pytest.approx((-1.2 - 0.5) / 4)
    # The same on a split advantage (a deduplicated tree's A⁺ / A⁻ columns).
    split, _ = policy_loss(
        logp.detach(), old, adv.clamp(min=0), weights, PolicyLossConfig(negative_weight=0.25),
        advantages_neg=adv.clamp(max=0),
    )
    assert split.item() == pytest.approx((-1.2 + 0.2 + 2 - 0.5) / 4)


def test_kl_estimators_hand_worked():
    logp = torch.tensor([math.log(0.5)])
    ref = torch.tensor([math.log(0.25)])
    assert kl_penalty(logp, ref, "k1").item() == pytest.approx(math.log(2))
    assert kl_penalty(logp, ref, "k2").item() == pytest.approx(0.5 * math.log(2) ** 2)
    assert kl_penalty(logp, ref, "k3").item() == pytest.approx(0.5 + math.log(2) - 1)


def test_kl_and_entropy_terms_enter_the_loss():
    logp = torch.tensor([[math.log(0.5)]], dtype=torch.float64)
    old = logp.clone()
    adv = torch.zeros(1, 1, dtype=torch.float64)
    w = torch.ones(1, 1, dtype=torch.float64)
    ref = torch.tensor([[math.log(0.25)]], dtype=torch.float64)
    ent = torch.tensor([[math.log(2)]], dtype=torch.float64)
    config = PolicyLossConfig(kl_coef=0.1, entropy_coef=0.01)
    loss, stats = policy_loss(logp, old, adv, w, config, ref_logp=ref, entropy=ent)
    assert loss.item() == pytest.approx(0.1 * (0.5 + math.log(2) - 1) - 0.01 * math.log(2))
    assert stats["kl"].item() == pytest.approx(0.5 + math.log(2) - 1)
    assert stats["entropy"].item() == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="ref_logp"):
        policy_loss(logp, old, adv, w, config)


def test_microbatches_sum_to_full_batch_loss_and_gradient():
    torch.manual_seed(0)
    logp = torch.randn(6, 5, dtype=torch.float64).requires_grad_()
    old = logp.detach() + 0.3 * torch.randn(6, 5, dtype=torch.float64)
    adv = torch.randn(6, 5, dtype=torch.float64)
    mask = (torch.rand(6, 5) > 0.3).long()
    for aggregation in ("token-mean", "seq-mean"):
        w = loss_weights(mask, aggregation).double()
        full, _ = policy_loss(logp, old, adv, w, PolicyLossConfig())
        (g_full,) = torch.autograd.grad(full, logp)
        parts = [policy_loss(logp[s], old[s], adv[s], w[s], PolicyLossConfig())[0] for s in (slice(0, 2), slice(2, 6))]
        (g_parts,) = torch.autograd.grad(sum(parts), logp)
        assert sum(parts).item() == pytest.approx(full.item())
        assert torch.allclose(g_parts, g_full)


def test_logprobs_and_entropy_hand_worked():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    logp, entropy = token_logprobs_and_entropy(logits, torch.tensor([0, 1]))
    assert logp.tolist() == pytest.approx([math.log(0.5), math.log(0.25)])
    assert entropy.tolist() == pytest.approx([math.log(2), -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))])


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match="dual_clip"):
        PolicyLossConfig(dual_clip=1.1)
    with pytest.raises(ValueError, match="clip_low"):
        PolicyLossConfig(clip_low=-0.1)
