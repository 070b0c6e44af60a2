"""The learner on a real (tiny, random-init) transformers model."""

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from agentrl.train.config import LoraSettings, OptimConfig, PolicyLossConfig
from agentrl.train.learner import Learner, apply_lora
from agentrl.train.rows import TokenRow, collate


def tiny_model(seed=0):
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=16, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(config)


@torch.no_grad()
def behaviour_logp(model, row):
    batch = collate([row], pad_id=0)
    logits = model(input_ids=batch.input_ids).logits[0, :-1].float()
    logp = torch.log_softmax(logits, -1).gather(-1, batch.input_ids[0, 1:, None])[:, 0]
    return [0.0] + logp.tolist()


def rows_for(model, advantages=(1.0, -1.0, 0.5)):
    rng = np.random.default_rng(0)
    rows = []
    for i, adv in enumerate(advantages):
        n = 5 + 3 * i
        ids = rng.integers(1, 16, size=n).tolist()
        mask = [0, 0] + [1] * (n - 2)
        row = TokenRow(ids, mask, [], [adv * m for m in mask])
        row.old_logp = [lp * m for lp, m in zip(behaviour_logp(model, row), mask)]
        rows.append(row)
    return rows


def test_micro_batch_size_does_not_change_the_update():
    results = []
    for budget in (10_000, 8):  # one forward vs one row per forward
        model = tiny_model()
        learner = Learner(model, OptimConfig(lr=1e-2, micro_batch_tokens=budget, max_grad_norm=None),
                          PolicyLossConfig(), pad_id=0)
        stats = learner.update(rows_for(tiny_model()))
        results.append(({n: p.grad.clone() for n, p in model.named_parameters()}, stats))
    (a, sa), (b, sb) = results
    for k in a:  # the accumulated gradients agree (Adam would amplify float noise on ~0 gradients)
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-7), k
    assert sa["pg_loss"] == pytest.approx(sb["pg_loss"], abs=1e-6)
    assert sa["clip_frac"] == 0.0  # first step: current policy == behaviour policy


def test_positive_advantage_raises_the_sampled_tokens_logprob():
    model = tiny_model()
    rows = rows_for(model, advantages=(1.0,))
    before = sum(behaviour_logp(model, rows[0]))
    learner = Learner(model, OptimConfig(lr=1e-2), PolicyLossConfig(), pad_id=0)
    for _ in range(3):
        learner.update(rows)
    assert sum(behaviour_logp(model, rows[0])) > before + 0.1


def test_gradient_clipping_bounds_the_step():
    model = tiny_model()
    learner = Learner(model, OptimConfig(lr=1e-2, max_grad_norm=1e-3), PolicyLossConfig(), pad_id=0)
    stats = learner.update(rows_for(tiny_model(), advantages=(100.0, 100.0, 100.0)))
    assert stats["grad_norm"] > 1e-3  # reported before clipping
    assert stats["skipped_steps"] == 0.0


def test_lora_trains_adapters_only_and_uses_base_as_reference():
    model = apply_lora(tiny_model(), LoraSettings(r=4, alpha=8))
    base = {k: v.clone() for k, v in model.state_dict().items() if "lora_" not in k}
    learner = Learner(model, OptimConfig(lr=5e-2), PolicyLossConfig(kl_coef=0.1), pad_id=0)
    assert learner.reference is None
    rows = rows_for(tiny_model())
    first = learner.update(rows)
    assert first["kl"] == pytest.approx(0.0, abs=1e-6)  # LoRA B starts at 0: policy == base
    second = learner.update(rows)
    assert second["kl"] > 0.0
    for k, v in model.state_dict().items():
        if "lora_" not in k:
            assert torch.equal(v, base[k]), k


def test_full_finetune_keeps_a_frozen_reference_copy():
    model = tiny_model()
    learner = Learner(model, OptimConfig(lr=1e-2), PolicyLossConfig(kl_coef=0.1), pad_id=0)
    assert learner.reference is not None
    assert all(not p.requires_grad for p in learner.reference.parameters())


def test_token_entropies_follow_the_policy_tokens_in_order():
    model = tiny_model()
    rows = rows_for(model)
    learner = Learner(model, OptimConfig(micro_batch_tokens=8), PolicyLossConfig(), pad_id=0)
    flat = learner.token_entropies(rows)
    assert flat.shape == (sum(sum(r.mask) for r in rows),)
    # Row 0's first policy token is predicted from position 1: its entropy from the logits there.
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([rows[0].input_ids])).logits[0, 1].float()
    probs = torch.softmax(logits, -1)
    assert flat[0] == pytest.approx(float(-(probs * probs.log()).sum()), rel=1e-4)
    assert np.all(flat > 0) and np.all(flat <= np.log(16) + 1e-5)


def test_token_logprobs_give_each_rows_policy_positions_and_their_logprobs():
    """Positions with mask > 0 past position 0 (an observation, mask 0, is skipped; a shared
    prefix's mask 2 counts), each with log π(token i | tokens < i) from a plain forward pass."""
    model = tiny_model()
    rows = [TokenRow([3, 4, 5, 6, 7], [0, 1, 0, 2, 1], [0.0] * 5, [0.0] * 5), TokenRow([8, 9], [0, 0], [0.0] * 2, [0.0] * 2),
            TokenRow([1, 2, 3], [1, 1, 1], [0.0] * 3, [0.0] * 3)]
    learner = Learner(model, OptimConfig(micro_batch_tokens=6), PolicyLossConfig(), pad_id=0)
    positions, logp = learner.token_logprobs(rows)
    assert [p.tolist() for p in positions] == [[1, 3, 4], [], [1, 2]]
    expected = [behaviour_logp(model, row)[i] for row, at in zip(rows, positions) for i in at]
    assert logp == pytest.approx(expected, abs=1e-5)
