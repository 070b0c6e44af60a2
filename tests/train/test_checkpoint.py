"""Checkpoints: exact round trip of weights, optimizer and RNG; incomplete folders ignored."""

import random

import numpy as np
import torch

from agentrl.train.checkpoint import Checkpointer


def make():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(1, 4)).sum().backward()
    opt.step()
    return model, opt


def test_round_trip_restores_weights_optimizer_rng_and_state(tmp_path):
    model, opt = make()
    ckpt = Checkpointer(tmp_path, keep=2)
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    path = ckpt.save(3, model, opt, {"policy_version": 3, "sampler": [1, 2]})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())

    other, other_opt = make()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    state = ckpt.load(path, other, other_opt)
    assert state == {"step": 3, "policy_version": 3, "sampler": [1, 2]}
    for a, b in zip(model.parameters(), other.parameters()):
        assert torch.equal(a, b)
    assert torch.equal(other_opt.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_keep_and_incomplete_checkpoints(tmp_path):
    model, opt = make()
    ckpt = Checkpointer(tmp_path, keep=2)
    for step in (1, 2, 3):
        ckpt.save(step, model, opt, {})
    (tmp_path / ".tmp-step_00000004").mkdir()  # a save killed halfway
    assert ckpt.steps() == [2, 3]
    assert ckpt.latest().name == "step_00000003"


def test_frozen_base_saves_only_trainable_tensors(tmp_path):
    model, opt = make()
    model[0].weight.requires_grad_(False)
    path = Checkpointer(tmp_path).save(1, model, opt, {})
    from safetensors.torch import load_file

    assert "0.weight" not in load_file(path / "model.safetensors")
    assert "1.weight" in load_file(path / "model.safetensors")
