"""Training configs: the examples validate, errors name the file and the field, overrides apply."""

from pathlib import Path

import pytest

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
