"""The ``cluster:`` section: validated at load time, before any work (no Ray needed)."""

import importlib.util

import pytest

from agentrl.cluster.config import ClusterConfig
from agentrl.train.config import ConfigError, load_config


def test_default_is_one_process_without_ray():
    assert load_config().cluster.address is None


def test_a_malformed_address_names_the_field():
    with pytest.raises(ConfigError, match=r"cluster\.address: 'head_node' is not 'local', 'auto' or HOST:PORT"):
        load_config(overrides=["cluster.address=head_node"])


def test_ray_missing_is_one_clear_message(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(ConfigError, match=r"cluster\.address: ray is not installed: pip install 'agentrl\[ray\]'"):
        load_config(overrides=["cluster.address=local"])


def test_resource_totals_add_up_role_by_role():
    pytest.importorskip("ray", reason="an address needs ray installed")
    one = ClusterConfig(address="local", env_workers=3, env_worker_cpus=0.5, samplers=2, sampler_cpus=1.5, sampler_gpus=1)
    assert one.resource_totals("CPU") == (4.5, "3 env workers x 0.5 + 2 samplers x 1.5")  # 1.5 + 3
    assert one.resource_totals("GPU") == (2, "2 samplers x 1")  # one learner: the trainer process, no reservation
    ranks = one.model_copy(update={"learner_ranks": 4, "learner_cpus": 0.25, "learner_gpus": 1})
    assert ranks.resource_totals("CPU") == (5.5, "3 env workers x 0.5 + 2 samplers x 1.5 + 4 learner ranks x 0.25")
    assert ranks.resource_totals("GPU").need == 6 and ranks.resource_totals("GPU").breakdown.endswith(" + 4 learner ranks x 1")
