"""The ``cluster:`` section: validated at load time, before any work (no Ray needed)."""

import importlib.util

import pytest

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
