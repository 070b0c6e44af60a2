"""Registry entries declare what they need (token entropies, action texts, trees or chains), the
declarations match what the code really reads, and the training config rejects combinations
that would crash at the first step."""

import numpy as np
import pytest

from agentrl.algos import ESTIMATORS, SHAPERS, Pipeline, StepBatch, get_estimator, get_shaper, requirements
from agentrl.types import RolloutTree, StepRecord, TreeLeaf, TreeNode


def chain_batch(**extra):
    return StepBatch.from_chains(
        traj=[0, 0, 1, 2],
        group=[0, 0, 0],
        reward=[0.0, 1.0, 0.0, 1.0],
        n_tokens=[1, 2, 1, 1],
        success=[True, False, True],
        **extra,
    )


def tree_batch():
    nodes = [
        TreeNode(
            node_id=i,
            parent_id=p,
            step=StepRecord(index=0, observation="", action="x", completion_token_ids=[1]),
        )
        for i, p in enumerate([None, 0, 0, None])
    ]
    leaves = [TreeLeaf(node_id=n, final_reward=r, success=r > 0) for n, r in [(1, 1.0), (2, 0.0), (3, 1.0)]]
    return StepBatch.from_trees([RolloutTree(task_id="q", nodes=nodes, leaves=leaves)])


def test_declarations():
    declared = {name: (sorted(e.needs), e.tree_only, e.chain_only) for name, e in ESTIMATORS.items()}
    assert declared == {
        "grpo": ([], False, False),
        "rloo": ([], False, False),
        "gigpo": ([], False, True),
        "tree_grpo": ([], True, False),
        "tree_intra": ([], True, False),
        "tree_2norm": ([], True, False),
        "gtpo_turn": ([], False, True),
        "gtpo_entropy": (["token_entropy"], False, True),
        "grpo_s": (["token_entropy"], False, True),
        "empg": (["token_entropy"], False, False),
    }
    assert {name: (sorted(s.needs), s.chain_only) for name, s in SHAPERS.items()} == {
        "otc_grpo": ([], False),
        "otc_ppo": ([], False),
        "invalid_action_penalty": ([], False),
        "turn_reward": ([], False),
        "gtpo_partial_credit": (["action_texts"], True),
    }


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_estimator_declarations_match_what_it_reads(name):
    est = get_estimator(name)
    plain = chain_batch()
    if "token_entropy" in est.needs:
        with pytest.raises(ValueError, match="token entropies"):
            est(plain)
        est(chain_batch(token_entropy=np.ones(5)))
    else:
        est(plain)  # runs without entropies or texts
    if est.chain_only:
        with pytest.raises(ValueError, match="needs chain trajectories"):
            est(tree_batch())
    elif not est.needs:
        est(tree_batch())  # runs on a deduplicated tree


@pytest.mark.parametrize("name", sorted(set(SHAPERS) - {"turn_reward"}))
def test_shaper_declarations_match_what_it_reads(name):
    shaper, spec = get_shaper(name), SHAPERS[name]
    if "action_texts" in spec.needs:
        with pytest.raises(ValueError, match="action texts"):
            shaper(chain_batch())
        shaper(chain_batch(action_text=np.array(["a", "b", "c", "d"], dtype=object)))
    else:
        shaper(chain_batch())
    if spec.chain_only:
        with pytest.raises(ValueError, match="needs chain trajectories"):
            shaper(tree_batch())
    else:
        shaper(tree_batch())


def test_requirements_combine_and_follow_the_wrapped_estimator():
    req = requirements("gtpo_turn", shapers=["gtpo_partial_credit", "otc_grpo"])
    assert req.needs == {"action_texts"} and req.chain_only == (
        "estimator 'gtpo_turn'",
        "shaper 'gtpo_partial_credit'",
    )
    assert requirements("empg", {"base": "tree_grpo"}).tree_only == ("estimator 'tree_grpo'",)
    assert requirements("empg", {"base": "gigpo"}).chain_only == ("estimator 'gigpo'",)
    assert Pipeline("grpo", shapers=[get_shaper("gtpo_partial_credit")]).needs == {"action_texts"}
    assert Pipeline("empg").needs == {"token_entropy"}
    with pytest.raises(ValueError, match="'tree_grpo' needs tree rollouts but shaper 'gtpo_partial_credit'"):
        requirements("tree_grpo", shapers=["gtpo_partial_credit"])
    with pytest.raises(KeyError, match="unknown shaper"):
        requirements("grpo", shapers=["nope"])


def test_check_rollouts():
    requirements("tree_grpo").check_rollouts(trees=True)
    requirements("gigpo").check_rollouts(trees=False)
    requirements("grpo").check_rollouts(trees=True)
    requirements("grpo").check_rollouts(trees=False)
    with pytest.raises(
        ValueError, match="estimator 'tree_intra' needs tree rollouts: add a rollout.tree section"
    ):
        requirements("tree_intra").check_rollouts(trees=False)
    with pytest.raises(ValueError, match="shaper 'gtpo_partial_credit' works on chains only"):
        requirements("grpo", shapers=["gtpo_partial_credit"]).check_rollouts(trees=True)


def test_training_config_rejects_what_would_crash_at_the_first_step():
    from agentrl.train.config import AlgoSection

    with pytest.raises(ValueError, match="shapers: estimator 'tree_grpo' needs tree rollouts but shaper"):
        AlgoSection(estimator="tree_grpo", shapers=[{"name": "gtpo_partial_credit"}])
    with pytest.raises(ValueError, match="config: unknown estimator 'nope'"):
        AlgoSection(estimator="empg", config={"base": "nope"})
    AlgoSection(estimator="gtpo_turn", shapers=[{"name": "gtpo_partial_credit"}])  # chains: fine
