"""Training configs: the examples validate, errors name the file and the field, overrides apply."""

import json
from pathlib import Path

import pytest
import yaml

from agentrl.train.config import ConfigError, TrainConfig, load_config

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate(path):
    assert isinstance(load_config(path), TrainConfig)


def test_default_yaml_mirrors_the_embedded_default():
    default = load_config().model_dump()
    from_file = load_config(Path(__file__).parents[2] / "examples" / "default.yaml").model_dump()
    assert from_file == default


def test_overrides_and_field_errors(tmp_path):
    cfg = load_config(overrides=["seed=4", "optim.lr=3e-4", "algo.estimator=grpo", "algo.config={}"])
    assert (cfg.seed, cfg.optim.lr, cfg.algo.estimator) == (4, 3e-4, "grpo")
    bad = tmp_path / "bad.yaml"
    bad.write_text("algo: {estimator: gigpo, config: {gamma: 2}}\noptim: {micro_batch_tokens: 0}\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    message = str(err.value)
    assert str(bad) in message and "algo.config" in message and "gamma" in message
    assert "optim.micro_batch_tokens" in message
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(overrides=["seed"])


# --- a one-field override keeps every other field of its section (issue 18) ---

def _leaves(node, prefix=()):
    """(path, value) of every leaf of a JSON-mode config dump; mappings are descended into."""
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaves(value, (*prefix, key))
    else:
        yield prefix, node


DEFAULT = TrainConfig().model_dump(mode="json")
LEAVES = [(".".join(path), value) for path, value in _leaves(DEFAULT)]


def _section_defaults():
    """Sections whose embedded-default value differs from the section class's plain defaults."""
    cfg = TrainConfig()
    return {
        name for name in TrainConfig.model_fields
        if hasattr(getattr(cfg, name), "model_dump")
        and getattr(cfg, name).model_dump() != type(getattr(cfg, name))().model_dump()
    }


def test_the_preset_sections_are_the_ones_tested():
    # If this changes, the override tests below cover the new preset section automatically.
    assert {"algo", "loss", "optim"} <= _section_defaults()


@pytest.mark.parametrize(("key", "value"), LEAVES, ids=[k for k, _ in LEAVES])
def test_setting_one_field_to_its_default_changes_nothing(key, value, tmp_path):
    # Before the fix, `--set optim.lr=0.0003` (the default's own lr) reset minibatches 4 -> 1.
    assert load_config(overrides=[f"{key}={json.dumps(value)}"]).model_dump(mode="json") == DEFAULT
    nested = value
    for part in reversed(key.split(".")):
        nested = {part: nested}
    partial = tmp_path / "partial.yaml"
    partial.write_text(yaml.safe_dump(nested))
    assert load_config(partial).model_dump(mode="json") == DEFAULT


@pytest.mark.parametrize(
    ("override", "key", "value"),
    [
        ("optim.lr=1e-3", "optim.lr", 1e-3),
        ("loss.aggregation=seq-mean", "loss.aggregation", "seq-mean"),
        ("algo.config.gamma=0.9", "algo.config.gamma", 0.9),
        ("env.options.size=4", "env.options.size", 4),
        ("sft.lr=1e-3", "sft.lr", 1e-3),
    ],
)
def test_one_changed_field_keeps_the_rest_of_its_section(override, key, value, tmp_path):
    expected = json.loads(json.dumps(DEFAULT))
    node = expected
    *parents, leaf = key.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = value
    assert load_config(overrides=[override]).model_dump(mode="json") == expected
    nested = value
    for part in reversed(key.split(".")):
        nested = {part: nested}
    partial = tmp_path / "partial.yaml"
    partial.write_text(yaml.safe_dump(nested))
    assert load_config(partial).model_dump(mode="json") == expected
    # --set on top of a YAML that sets another field of the same section keeps both.
    assert load_config(partial, overrides=["optim.warmup_steps=3"]).optim.warmup_steps == 3


def test_changing_the_estimator_or_env_drops_the_presets_parameters_for_the_old_one():
    # penalty_mode belongs to the preset's GiGPO, the maze options to the preset's maze.
    cfg = load_config(overrides=["algo.estimator=grpo", "env.id=agentrl/Calculator-v0"])
    assert (cfg.algo.config, cfg.env.options) == ({}, {})
    cfg = load_config(overrides=["algo.estimator=gigpo", "env.id=agentrl/Maze-v0"])
    assert cfg.algo.config == DEFAULT["algo"]["config"] and cfg.env.options == DEFAULT["env"]["options"]
    cfg = load_config(overrides=["algo.estimator=grpo", "algo.config.eps=1.0e-5"])
    assert cfg.algo.config == {"eps": 1e-5}
