"""`agentrl train` on trees: a tree YAML trains on tree rollouts; a tree-only estimator on chains
is a config error at load time."""

import json

import pytest

from agentrl.train.config import ConfigError, load_config
from agentrl.train.trainer import Trainer

SMALL = [
    "seed=3",
    "steps=1",
    "model.tiny={hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64}",
    "env.options={size: 3, num_tasks: 8, max_turns: 3}",
    "rollout.groups_per_step=2",
    "sft.episodes=32",
    "sft.steps=48",
    "eval.every=0",
    "eval.episodes=2",
]


def test_a_tree_only_estimator_on_chain_rollouts_is_a_config_error():
    with pytest.raises(ConfigError, match="tree_grpo.*needs tree rollouts: add a rollout.tree section"):
        load_config(overrides=["algo.estimator=tree_grpo", "algo.config={}"])
    with pytest.raises(ConfigError, match="token-mean"):
        load_config("examples/tree_grpo_maze.yaml", overrides=["loss.aggregation=seq-mean"])


def test_the_example_tree_config_loads():
    config = load_config("examples/tree_grpo_maze.yaml")
    assert config.rollout.tree.num_trees == 2 and config.algo.estimator == "tree_grpo"
    assert config.rollout.strict is True


@pytest.mark.slow
def test_train_on_a_tree_yaml_trains_on_trees(tmp_path):
    config = load_config("examples/tree_grpo_maze.yaml", overrides=[*SMALL, f"output_dir={tmp_path / 'run'}"])
    summary = Trainer(config, progress=False, log=lambda *_: None).run()
    assert summary["steps"] == 1
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    step = records[-1]
    # 2 tasks × 2 trees, each a chain plus up to 3 branches (one per inner node: a chain that
    # ends after one step has none), so 1-4 leaves per tree, and some trees did branch.
    assert 1 < step["tree/leaves"] <= 4 and step["tree/nodes"] >= step["tree/leaves"]
    assert step["rollout/episodes"] == 4 * step["tree/leaves"]
    assert step["tree/tokens_saved"] > 0 and step["tree/materialised_tokens"] > step["rollout/tokens"]
    assert step["train/trained_tokens"] > 0
