"""Building the learner's batch from rollout records: concatenated step columns vs every pydantic step.

    .venv/bin/python bench/step_batch.py [--episodes 65536] [--group 8] [--trees 4096] [--repeat 3]

Records, shaped like a rollout's: ``--episodes`` chains in groups of ``--group``, 1–31 steps each
(~1M steps for 65,536 episodes), a random walk over 40 recurring state keys per group, the
reward on the last step, 5% invalid actions, 0–2 tool calls per step, 2% infra-failed and 5%
truncated episodes; 4 sampled tokens per step (with logprobs) after a context that grows by the
completion and a 2-token observation each turn (8-token system prompt), so the token layout is
a real one. ``--trees`` Tree-GRPO trees in groups of 4: an 8–24 step chain, then 5 branches from
random non-terminal nodes, each running on to depth 8–24.

**New** (the code under test): ``StepBatch.from_trajectories`` / ``from_trees`` and
``RolloutBatch.from_groups`` on records whose :class:`~agentrl.types.StepColumns` the rollout took
when each record finished (``rollout.episode.finalize``, ``TreeBuilder.grow``). Taking them is
timed too: that cost moved to the rollout, paid once per finished record.
Their token layouts (:class:`~agentrl.types.TokenLayout`) are taken with the columns, so
``from_groups`` joins flat arrays and the token rows are built when asked for (``sample_rows``:
timed, as the learner's input needs them). **Old** (the same-run baseline): a faithful copy of
the per-record builders that read every step's fields from the pydantic records at batch time,
and of the token layout that read every step's tokens there too (agentrl before issue 20 item
4), kept only in this file. Both builders are checked to give the same batch, field by field. Times are
CPU seconds of this process (``time.process_time``: on a shared machine, wall time mostly
measures the neighbours), best of ``--repeat``; the records are ``gc.freeze``-d so a collection
of the million objects does not land in one timing and not the other.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import time

import numpy as np

from agentrl.algos import StepBatch
from agentrl.rollout.batch import RolloutBatch, TokenRow
from agentrl.rollout.engine import Group, GroupSpec
from agentrl.types import RolloutTree, StepRecord, TokenLayout, Trajectory, TreeLeaf, TreeNode

N_STATES = 40
SYSTEM, COMPLETION, OBSERVATION = 8, 4, 2


# ----------------------------------------------------------------------------------- records
class Records:
    """Builds steps the way the turn loop does: each prompt is the context so far."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def run(self, depth: int, length: int, context: list[int], group: int, state: int) -> list[tuple]:
        """``length`` steps from ``depth``: (step, context after it, state after it) each."""
        rng = self.rng
        completions = rng.integers(3, 1000, (length, COMPLETION)).tolist()
        observations = rng.integers(3, 1000, (length, OBSERVATION)).tolist()
        logprobs = (-rng.random((length, COMPLETION))).tolist()
        tools = rng.integers(0, 3, length).tolist()
        valid = (rng.random(length) > 0.05).tolist()
        moves = rng.integers(-2, 3, length).tolist()
        out = []
        for k in range(length):
            record = StepRecord.model_construct(
                index=depth + k,
                observation="obs",
                action="act",
                prompt_token_ids=context,
                completion_token_ids=completions[k],
                logprobs=logprobs[k],
                finish_reason="stop",
                reward=0.0,
                tool_calls=tools[k],
                state_key=f"g{group}s{state}",
                valid_action=valid[k],
                policy_version=0,
            )
            context = context + completions[k] + observations[k]
            state = (state + moves[k]) % N_STATES
            out.append((record, context, state))
        return out

    def outcome(self) -> tuple[bool, str]:
        u = self.rng.random(2)
        return bool(u[0] < 0.3), "infra_error" if u[1] < 0.02 else "truncated" if u[1] < 0.07 else "ok"

    def chain(self, i: int, group: int, spec: GroupSpec, task_id: str) -> Trajectory:
        rng = self.rng
        steps = [
            r
            for r, _, _ in self.run(
                0, int(rng.integers(1, 32)), rng.integers(3, 1000, SYSTEM).tolist(), group, 0
            )
        ]
        success, status = self.outcome()
        steps[-1].reward = 10.0 * success
        return Trajectory(
            id=f"t{i}",
            task_id=task_id,
            group_id=spec.group_id,
            seed=group,
            steps=steps,
            final_reward=10.0 * success,
            success=success and status == "ok",
            status=status,
        )

    def tree(self, i: int, group: int, spec: GroupSpec, task_id: str) -> RolloutTree:
        rng = self.rng
        nodes: list[TreeNode] = []
        leaves: list[TreeLeaf] = []
        after: dict[int, tuple[list[int], int]] = {}  # non-terminal node → (context, state) after it

        def grow(parent: int | None, depth: int, context: list[int], state: int, end: int) -> None:
            for record, context_after, state_after in self.run(depth, end - depth + 1, context, group, state):
                nodes.append(TreeNode(node_id=len(nodes), parent_id=parent, step=record))
                parent = len(nodes) - 1
                after[parent] = (context_after, state_after)
            del after[parent]
            success, status = self.outcome()
            record.reward = float(success)
            leaves.append(
                TreeLeaf(node_id=parent, final_reward=record.reward, success=success, status=status)
            )

        grow(None, 0, rng.integers(3, 1000, SYSTEM).tolist(), 0, int(rng.integers(7, 24)))
        for _ in range(5):
            at = int(rng.choice(list(after)))
            context, state = after[at]
            depth = nodes[at].step.index + 1
            grow(at, depth, context, state, max(depth, int(rng.integers(7, 24))))
        return RolloutTree(
            id=f"T{i}", task_id=task_id, group_id=spec.group_id, seed=group, nodes=nodes, leaves=leaves
        )


def chain_groups(n_episodes: int, group_size: int) -> list[Group]:
    """Groups as the engine hands them over: members share their spec's group id and task id."""
    make = Records(0)
    groups = []
    for g in range(n_episodes // group_size):
        spec, task_id = GroupSpec(seed=g, group_id=f"g{g}"), f"q{g}"
        groups.append(
            Group(spec, [make.chain(g * group_size + k, g, spec, task_id) for k in range(group_size)])
        )
    return groups


def tree_groups(n_trees: int, per_group: int = 4) -> list[Group]:
    make = Records(1)
    groups = []
    for g in range(n_trees // per_group):
        spec, task_id = GroupSpec(seed=g, group_id=f"G{g}"), f"q{g}"
        groups.append(Group(spec, [make.tree(g * per_group + k, g, spec, task_id) for k in range(per_group)]))
    return groups


# ------------------------------------------------------------- the old per-record builders (baseline)
class _Interner:
    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    def __call__(self, key: str) -> int:
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = len(self._ids)
        return found

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._ids)


def old_from_trajectories(trajectories, keep_text: bool = False) -> StepBatch:
    """StepBatch.from_trajectories as it was: every step's fields read from the records."""
    kept = []
    for tr in trajectories:
        if not tr.steps:
            if tr.learnable:
                raise ValueError(f"trajectory {tr.id!r} has no steps but is learnable (status {tr.status!r})")
            continue
        kept.append(tr)
    steps = [s for tr in kept for s in tr.steps]
    lengths = np.fromiter((len(tr.steps) for tr in kept), dtype=np.int64, count=len(kept))
    groups, tasks, trees, states = _Interner(), _Interner(), _Interner(), _Interner()
    per_traj_group = np.fromiter((groups(tr.group_id or tr.task_id) for tr in kept), np.int64, len(kept))
    per_traj_task = np.fromiter((tasks(tr.task_id) for tr in kept), np.int64, len(kept))
    per_traj_tree = np.fromiter(
        (trees(str(tr.info.get("tree_id", tr.id))) for tr in kept), np.int64, len(kept)
    )
    traj = np.repeat(np.arange(len(kept)), lengths)
    batch = StepBatch.from_chains(
        traj=traj,
        group=per_traj_group,
        reward=np.fromiter((s.reward for s in steps), np.float64, len(steps)),
        final_reward=np.fromiter((tr.final_reward for tr in kept), np.float64, len(kept)),
        success=np.fromiter((tr.success for tr in kept), bool, len(kept)),
        valid=np.fromiter((tr.learnable for tr in kept), bool, len(kept)),
        action_valid=np.fromiter((s.valid_action for s in steps), bool, len(steps)),
        state=np.fromiter(
            (-1 if s.state_key is None else states(s.state_key) for s in steps), np.int64, len(steps)
        ),
        tool_calls=np.fromiter((s.tool_calls for s in steps), np.int64, len(steps)),
        n_tokens=np.fromiter((len(s.completion_token_ids) for s in steps), np.int64, len(steps)),
        task=per_traj_task,
        tree=per_traj_tree,
        action_text=np.array([s.action for s in steps], dtype=object) if keep_text else None,
        state_keys=states.names,
    )
    return batch.replace(
        group_names=groups.names, task_names=tasks.names, traj_names=tuple(tr.id for tr in kept)
    )


def old_from_trees(trees, keep_text: bool = False) -> StepBatch:
    """StepBatch.from_trees as it was: every node read from the records."""
    groups, tasks, states = _Interner(), _Interner(), _Interner()
    cols: dict[str, list] = {k: [] for k in ("group", "traj", "node", "parent", "task")}
    steps = []
    leaf_rows, leaf_reward, leaf_success, leaf_valid = [], [], [], []
    offset = 0
    for ti, tree in enumerate(trees):
        row_of = {node.node_id: offset + i for i, node in enumerate(tree.nodes)}
        g, task = groups(tree.group_id or tree.task_id), tasks(tree.task_id)
        for node in tree.nodes:
            cols["group"].append(g)
            cols["traj"].append(ti)
            cols["task"].append(task)
            cols["node"].append(node.node_id)
            cols["parent"].append(-1 if node.parent_id is None else row_of[node.parent_id])
            steps.append(node.step)
        for lf in tree.leaves:
            leaf_rows.append(row_of[lf.node_id])
            leaf_reward.append(lf.final_reward)
            leaf_success.append(lf.success)
            leaf_valid.append(lf.status != "infra_error")
        offset += len(tree.nodes)
    n = offset
    parent = np.asarray(cols["parent"], dtype=np.int64)
    depth = np.zeros(n, dtype=np.int64)
    for i in np.flatnonzero(parent >= 0):
        depth[i] = depth[parent[i]] + 1
    episode_rows = np.asarray(leaf_rows, dtype=np.int64)
    order = np.argsort(episode_rows, kind="stable")
    traj = np.asarray(cols["traj"], dtype=np.int64)
    return StepBatch(
        group=np.asarray(cols["group"], dtype=np.int64),
        traj=traj,
        tree=traj,
        node=np.asarray(cols["node"], dtype=np.int64),
        parent=parent,
        step=depth,
        reward=np.fromiter((s.reward for s in steps), np.float64, n),
        action_valid=np.fromiter((s.valid_action for s in steps), bool, n),
        state=np.fromiter((-1 if s.state_key is None else states(s.state_key) for s in steps), np.int64, n),
        tool_calls=np.fromiter((s.tool_calls for s in steps), np.int64, n),
        n_tokens=np.fromiter((len(s.completion_token_ids) for s in steps), np.int64, n),
        task=np.asarray(cols["task"], dtype=np.int64),
        episode_rows=episode_rows[order],
        episode_reward=np.asarray(leaf_reward, dtype=np.float64)[order],
        episode_success=np.asarray(leaf_success, dtype=bool)[order],
        episode_valid=np.asarray(leaf_valid, dtype=bool)[order],
        state_keys=states.names,
        group_names=groups.names,
        task_names=tasks.names,
        traj_names=tuple(t.id for t in trees),
        action_text=np.array([s.action for s in steps], dtype=object) if keep_text else None,
    )


@dataclasses.dataclass
class OldRolloutBatch:
    """RolloutBatch as it was: the template token rows built with the batch."""

    steps: StepBatch
    tokens: list[TokenRow]
    token_row: np.ndarray
    token_pos: np.ndarray
    episode_status: np.ndarray
    dropped: int
    trees: bool

    def sample_rows(self) -> list[TokenRow]:
        """The rows with every policy token trained once (the old per-row scatter)."""
        mask = np.ones(self.token_row.size, np.int64)
        pos = neg = np.zeros(self.token_row.size)
        order = np.argsort(self.token_row, kind="stable")
        bounds = np.searchsorted(self.token_row[order], np.arange(len(self.tokens) + 1))
        rows = []
        for ri, row in enumerate(self.tokens):
            k = order[bounds[ri] : bounds[ri + 1]]
            at = self.token_pos[k]
            m, a, n = np.zeros(len(row), np.int64), np.zeros(len(row)), np.zeros(len(row))
            m[at], a[at], n[at] = mask[k], pos[k], neg[k]
            rows.append(
                dataclasses.replace(row, mask=m.tolist(), advantage=a.tolist(), advantage_neg=n.tolist())
            )
        return rows


def old_from_groups(groups) -> OldRolloutBatch:
    """RolloutBatch.from_groups as it was (chains became one-path trees when mixed)."""
    members = [m for g in groups for m in g.members]
    if all(isinstance(m, Trajectory) for m in members):
        kept = [t for t in members if t.steps]
        steps = old_from_trajectories(kept)
        records = [s for t in kept for s in t.steps]
        status = [t.status for t in kept]
        dropped = len(members) - len(kept)
        trees = False
    else:
        forest = [m if isinstance(m, RolloutTree) else RolloutTree.from_trajectory(m) for m in members]
        steps = old_from_trees(forest)
        records = [n.step for t in forest for n in t.nodes]
        leaf_rows, leaf_status, offset = [], [], 0
        for tree in forest:
            row_of = {n.node_id: offset + i for i, n in enumerate(tree.nodes)}
            leaf_rows += [row_of[leaf.node_id] for leaf in tree.leaves]
            leaf_status += [leaf.status for leaf in tree.leaves]
            offset += len(tree.nodes)
        status = [leaf_status[i] for i in np.argsort(np.asarray(leaf_rows, dtype=np.int64), kind="stable")]
        dropped = sum(1 for t in forest if not t.nodes)
        trees = True
    rows, token_row, token_pos = old_layout(records, steps.parent)
    return OldRolloutBatch(
        steps=steps,
        tokens=rows,
        token_row=token_row,
        token_pos=token_pos,
        episode_status=np.asarray(status, dtype=object),
        dropped=dropped,
        trees=trees,
    )


def old_layout(
    records: list[StepRecord], parent: np.ndarray
) -> tuple[list[TokenRow], np.ndarray, np.ndarray]:
    """The token layout as it was: every step of the batch read at batch time."""
    rows: list[TokenRow] = []
    tip: dict[int, int] = {}  # token row → the step row it ends with
    row_of_step = np.full(len(records), -1, dtype=np.int64)
    token_row: list[int] = []
    token_pos: list[int] = []
    for r, step in enumerate(records):
        n = len(step.completion_token_ids)
        if n == 0:
            continue
        if len(step.logprobs) != n:
            raise ValueError(f"step {step.index}: completion has no behaviour logprobs")
        prompt = step.prompt_token_ids
        if not prompt:
            raise ValueError(f"step {step.index}: empty prompt_token_ids")
        p = int(parent[r])
        ri = int(row_of_step[p]) if p >= 0 else -1
        if ri < 0 or tip[ri] != p or prompt[: len(rows[ri].input_ids)] != rows[ri].input_ids:
            ri = len(rows)
            rows.append(TokenRow([], [], [], [], [], step.policy_version))
        row = rows[ri]
        extra = prompt[len(row.input_ids) :]
        start = len(row.input_ids) + len(extra)
        row.input_ids += list(extra) + list(step.completion_token_ids)
        row.mask += [0] * (len(extra) + n)
        row.old_logp += [0.0] * len(extra) + list(step.logprobs)
        row.advantage += [0.0] * (len(extra) + n)
        row.advantage_neg += [0.0] * (len(extra) + n)
        if step.policy_version is not None:
            older = row.policy_version
            row.policy_version = step.policy_version if older is None else min(older, step.policy_version)
        token_row += [ri] * n
        token_pos += range(start, start + n)
        tip[ri] = r
        row_of_step[r] = ri
    return rows, np.asarray(token_row, dtype=np.int64), np.asarray(token_pos, dtype=np.int64)


# ------------------------------------------------------------------------------------- timing
def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        out = None
        gc.collect()
        t0 = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t0)
    return best, out


def take_columns(members) -> float:
    """Seconds to take every record's columns afresh (what finalize / TreeBuilder.grow pay)."""
    for m in members:
        m.__dict__.pop("columns", None)
    gc.collect()
    t0 = time.process_time()
    for m in members:
        m.columns  # noqa: B018 - taken, as at the end of a rollout
    return time.process_time() - t0


def take_layouts(members) -> float:
    """Seconds to take every record's token layout afresh (part of taking its columns)."""
    parents = [m.columns.rows["parent"].tolist() for m in members]
    gc.collect()
    t0 = time.process_time()
    for m, parent in zip(members, parents):
        TokenLayout.of(m.steps, parent)
    return time.process_time() - t0


def assert_same(new: StepBatch, old: StepBatch) -> None:
    for f in dataclasses.fields(StepBatch):
        a, b = getattr(new, f.name), getattr(old, f.name)
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=f.name)
            assert a.dtype == b.dtype, f.name
        else:
            assert a == b, f.name


def assert_same_rows(new: RolloutBatch, old: OldRolloutBatch) -> None:
    assert_same(new.steps, old.steps)
    assert new.tokens == old.tokens and new.sample_rows() == old.sample_rows()
    assert new.dropped == old.dropped and new.trees == old.trees
    for name in ("token_row", "token_pos", "episode_status"):
        np.testing.assert_array_equal(getattr(new, name), getattr(old, name), err_msg=name)


def compare(label: str, groups: list[Group], repeat: int) -> None:
    members = [m for g in groups for m in g.members]
    take = take_columns(members)
    gc.freeze()  # the columns live as long as the records
    old_steps = old_from_trees if isinstance(members[0], RolloutTree) else old_from_trajectories
    new_steps = StepBatch.from_trees if isinstance(members[0], RolloutTree) else StepBatch.from_trajectories
    t_old, old = best_of(lambda: old_steps(members), repeat)
    t_new, new = best_of(lambda: new_steps(members), repeat)
    assert_same(new, old)
    n = new.n_rows
    print(f"{label}: {n:,} rows, {len(members):,} records, {new.n_episodes:,} episodes")
    print(f"  StepBatch  old (per pydantic step) {t_old * 1e6 / n:6.2f} us/step  ({t_old:6.2f} s)")
    print(
        f"  StepBatch  new (columns)           {t_new * 1e6 / n:6.2f} us/step  ({t_new:6.2f} s)   {t_old / t_new:5.1f}x"
    )
    print(f"  taking the columns at the end of each record (rollout side) {take * 1e6 / n:5.2f} us/step")
    t_old_all, old_all = best_of(lambda: old_from_groups(groups), repeat)
    t_new_all, new_all = best_of(lambda: RolloutBatch.from_groups(groups), repeat)
    assert_same_rows(new_all, old_all)
    records = [s for m in members for s in m.steps]
    t_layout_old, _ = best_of(lambda: old_layout(records, new.parent), repeat)
    t_rows_old, _ = best_of(old_all.sample_rows, repeat)
    t_rows_new, _ = best_of(new_all.sample_rows, repeat)
    t_take_layout = take_layouts(members)
    print(
        f"  RolloutBatch.from_groups   old {t_old_all * 1e6 / n:6.2f} us/step  ({t_old_all:6.2f} s)"
        f"   of which the token layout {t_layout_old * 1e6 / n:5.2f} us/step\n"
        f"  RolloutBatch.from_groups   new {t_new_all * 1e6 / n:6.2f} us/step  ({t_new_all:6.2f} s)   "
        f"{t_old_all / t_new_all:5.1f}x\n"
        f"  token rows (sample_rows)   old {t_rows_old * 1e6 / n:6.2f} us/step\n"
        f"  token rows (sample_rows)   new {t_rows_new * 1e6 / n:6.2f} us/step   {t_rows_old / t_rows_new:5.1f}x\n"
        f"  from_groups + rows         old {(t_old_all + t_rows_old) * 1e6 / n:6.2f} us/step\n"
        f"  from_groups + rows         new {(t_new_all + t_rows_new) * 1e6 / n:6.2f} us/step   "
        f"{(t_old_all + t_rows_old) / (t_new_all + t_rows_new):5.1f}x\n"
        f"  taking the token layouts at the end of each record (rollout side, part of taking the columns) "
        f"{t_take_layout * 1e6 / n:5.2f} us/step"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=65536)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--trees", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    t0 = time.process_time()
    chains = chain_groups(args.episodes, args.group)
    trees = tree_groups(args.trees)
    gc.freeze()
    print(f"records built in {time.process_time() - t0:.1f} s")
    compare("chains", chains, args.repeat)
    compare("trees", trees, args.repeat)


if __name__ == "__main__":
    main()
