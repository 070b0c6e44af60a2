"""The one seam between rollouts and learning: :class:`RolloutBatch`, built once from groups.

    batch = RolloutBatch.from_groups(groups)          # chains or trees (or both)
    batch.steps    → StepBatch for shapers and estimators (one row per step / tree node)
    batch.groups   → the groups as handed over (staleness, policy versions: carried, not recomputed)
    adv = pipeline(batch.steps)
    batch.with_advantages(adv).tokens → token rows for the learner

Everything that relates a step to its tokens is decided here, once: the **layout** maps every
policy token of the StepBatch's flat token axis (rows in order, ``n_tokens`` each) to a
(token row, position) pair. Advantages, loss masks and token entropies travel along that map, so
the estimators' columns and the learner's rows agree by construction.

**Token rows.** A step whose context extends its parent's row (``prompt = row ‖ …``: the renderer
only ever appends) continues that row; otherwise (a second child of a tree node, a new segment
after a template rewrote history) it starts a new row whose context is its prompt. No token is
re-tokenized. A chain is therefore one row (or one per segment); a tree is one row per branch,
and **each node's policy tokens appear once**: a shared prefix is trained once, as context
(mask 0) in the rows of the branches below it. Rows never cross a record, so each record's rows
are laid out when its columns are taken (:class:`agentrl.types.TokenLayout`, at the end of the
episode or tree); the batch joins them as flat arrays (``layout``) and builds the
:class:`TokenRow` objects only when rows are asked for (``tokens``, ``sample_rows``,
``with_advantages``). A record whose steps cannot be laid out (a completion without behaviour
logprobs, an empty prompt) raises its ValueError when it is batched.

**Credit (Tree-GRPO, reference §4.3).** Training every root-to-leaf path as its own sequence gives
node v's tokens ``n(v)`` copies (``n`` = valid leaves below v), each with that leaf's advantage.
A row position therefore carries

* ``mask = n(v)`` — the number of trained copies (0: not trained; 1 on chains). Token-mean
  aggregation divides by Σ mask, the *duplicated* token count, and the KL/entropy terms are
  weighted by n(v) per token, as in the materialised loss;
* ``advantage = W⁺(v)/n(v)`` and ``advantage_neg = W⁻(v)/n(v)`` — the positive and negative parts
  of the leaf advantages below v. PPO's clipped term is positively homogeneous in A, so
  ``n·[pg(W⁺/n) + pg(W⁻/n)] = Σ_ℓ pg(A_ℓ)`` for *any* ratio ρ (clipping and dual clip included),
  where a single ``W = W⁺ + W⁻`` would be exact only while ρ stays inside the clip range.

Leaf advantages are recovered from the estimator's per-row credit W (``W(v) = Σ_{ℓ below v} A_ℓ``)
as ``W(v) − Σ_children W(c)`` — the episode ending at v, 0 elsewhere (the sum, should two
episodes end on one node). On a chain this is the step's own advantage, and the split is just
its sign.
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from agentrl.algos.batch import StepBatch, join_columns
from agentrl.types import EPISODE_COLUMNS, STATUSES, RolloutTree, TokenLayout, Trajectory

if TYPE_CHECKING:
    from agentrl.algos.pipeline import Advantages
    from agentrl.rollout.engine import Group


@dataclasses.dataclass
class TokenRow:
    """One training sequence: ids and, per position, the trained copies (``mask``), behaviour
    log-probability and the split advantage (see the module docstring)."""

    input_ids: list[int]
    mask: list[int]
    old_logp: list[float]
    advantage: list[float]
    advantage_neg: list[float] = dataclasses.field(default_factory=list)  # empty: no negative part
    policy_version: int | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclasses.dataclass(frozen=True)
class RolloutBatch:
    """Groups of chains or trees as one batch; see the module docstring."""

    steps: StepBatch
    layout: TokenLayout  # the token rows, flat (the records' layouts joined)
    groups: tuple = ()
    trained: list[TokenRow] | None = None  # the rows with advantages laid on (with_advantages)
    episode_status: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, object))
    dropped: int = 0  # infra-failed episodes without a single step (no row, counted in metrics)
    trees: bool = False  # built from tree rollouts

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_groups(cls, groups: Sequence[Group], *, keep_text: bool = False) -> RolloutBatch:
        """The batch of ``groups`` (members in order); ``keep_text``: the action-text column."""
        return cls.from_members([m for g in groups for m in g.members], groups=groups, keep_text=keep_text)

    @classmethod
    def from_members(
        cls,
        members: Sequence[Trajectory | RolloutTree],
        *,
        groups: Sequence[Group] = (),
        keep_text: bool = False,
    ) -> RolloutBatch:
        """The batch of trajectories and/or trees (a chain among trees is a one-path tree)."""
        is_trees = not all(isinstance(m, Trajectory) for m in members)
        kept = [m for m in members if m.columns.rows.size]
        steps = (StepBatch.from_trees if is_trees else StepBatch.from_trajectories)(kept, keep_text=keep_text)
        episodes = join_columns([m.columns.episodes for m in kept], EPISODE_COLUMNS)
        status = np.asarray(STATUSES, dtype=object)[episodes["status"]]
        return cls(
            steps=steps,
            layout=_join_layouts([m.columns.tokens for m in kept]),
            groups=tuple(groups),
            episode_status=status,
            dropped=len(members) - len(kept),
            trees=is_trees,
        )

    # ------------------------------------------------------------------ what travels along the layout
    @property
    def token_row(self) -> np.ndarray:
        """Each policy token's (StepBatch flat token axis) token row …"""
        return self.layout.token_row

    @property
    def token_pos(self) -> np.ndarray:
        """… and its position in that row."""
        return self.layout.token_pos

    @property
    def tokens(self) -> list[TokenRow]:
        """The token rows: with the advantages laid on (:meth:`with_advantages`), else with
        mask and advantages 0 (built once)."""
        return self._untrained if self.trained is None else self.trained

    @functools.cached_property
    def _untrained(self) -> list[TokenRow]:
        return self._rows(0)

    def copies(self) -> np.ndarray:
        """Trained copies of each row's tokens: valid leaves at or below it (1/0 on chains)."""
        return np.rint(self.steps.credit(self.steps.episode_valid.astype(np.float64))).astype(np.int64)

    def sample_rows(self) -> list[TokenRow]:
        """The token rows with every policy token trained once and zero advantage (SFT
        demonstrations; the entropy forward)."""
        return self._rows(1)

    def with_token_entropy(self, entropy: np.ndarray) -> RolloutBatch:
        """Attach per-token entropies as returned by ``Learner.token_entropies(self.sample_rows())``
        (rows in order, positions in order) to the StepBatch's flat token axis."""
        entropy = np.asarray(entropy, dtype=np.float64)
        if entropy.shape != self.token_row.shape:
            raise ValueError(f"expected {self.token_row.size} token entropies, got {entropy.shape}")
        flat = np.empty_like(entropy)
        flat[np.lexsort((self.token_pos, self.token_row))] = entropy
        return dataclasses.replace(self, steps=self.steps.replace(token_entropy=flat))

    def with_advantages(self, adv: Advantages) -> RolloutBatch:
        """The batch whose token rows carry ``adv`` (a pipeline run on ``self.steps``)."""
        steps = self.steps
        copies = self.copies() * adv.mask
        if adv.step is None:  # token-level estimator: one value per flat token
            if not steps.is_chain:
                raise ValueError("token-level estimators train on chains; this batch holds trees")
            token = np.asarray(adv.token, dtype=np.float64)
            pos, neg = np.maximum(token, 0.0), np.minimum(token, 0.0)
            n = np.repeat(copies, steps.n_tokens)
        else:
            w = np.asarray(adv.step, dtype=np.float64)
            if steps.is_chain:
                own = w
                w_pos, w_neg = np.maximum(own, 0.0), np.minimum(own, 0.0)
            else:
                own = w.copy()
                child = steps.parent >= 0
                np.subtract.at(own, steps.parent[child], w[child])
                w_pos, w_neg = (
                    _subtree_sum(steps, np.maximum(own, 0.0)),
                    _subtree_sum(steps, np.minimum(own, 0.0)),
                )
            per = np.maximum(copies, 1)
            n = np.repeat(copies, steps.n_tokens)
            pos = np.repeat(w_pos / per, steps.n_tokens)
            neg = np.repeat(w_neg / per, steps.n_tokens)
        return dataclasses.replace(
            self, trained=self._rows(n, np.where(n > 0, pos, 0.0), np.where(n > 0, neg, 0.0))
        )

    def _rows(
        self, mask: np.ndarray | int, pos: np.ndarray | float = 0.0, neg: np.ndarray | float = 0.0
    ) -> list[TokenRow]:
        """The token rows with ``mask``/``pos``/``neg`` laid on: one value per policy token (the
        flat token axis), or one for all of them."""
        t = self.layout
        ends = np.cumsum(t.row_lengths)
        at = (ends - t.row_lengths)[t.token_row] + t.token_pos  # each policy token in the flat rows
        m, a, n = np.zeros(t.ids.size, np.int64), np.zeros(t.ids.size), np.zeros(t.ids.size)
        m[at], a[at], n[at] = mask, pos, neg
        ids, logp, ends = t.ids, t.old_logp, ends.tolist()
        return [  # sliced per row: one long Python list per column costs more in the collector
            TokenRow(
                ids[b:e].tolist(),
                m[b:e].tolist(),
                logp[b:e].tolist(),
                a[b:e].tolist(),
                n[b:e].tolist(),
                v if has else None,
            )
            for b, e, v, has in zip([0, *ends[:-1]], ends, t.version.tolist(), t.versioned.tolist())
        ]

    # ------------------------------------------------------------------ metrics
    def metrics(self, seconds: float) -> dict[str, float]:
        """Rollout statistics (infra-failed episodes counted, not averaged in; staleness from the
        groups; tree sizes and the tokens the shared prefixes saved)."""
        s = self.steps
        ep = s.episode_rows
        valid = s.episode_valid
        tokens = int(s.n_tokens.sum())
        everyone = np.rint(s.credit(np.ones(ep.size))).astype(np.int64)  # paths through each row

        def mean(values) -> float:
            values = np.asarray(values, dtype=np.float64)[valid]
            return float(values.mean()) if values.size else 0.0

        staleness = [g.staleness for g in self.groups if g.staleness is not None]
        out = {
            "rollout/reward": mean(s.episode_reward),
            "rollout/success": mean(s.episode_success),
            "rollout/turns": mean(s.episode_length),
            "rollout/tool_calls": mean(s.episode_tool_calls),
            "rollout/invalid_action_rate": float((~s.action_valid[s.valid]).mean()) if s.valid.any() else 0.0,
            "rollout/truncated": mean(self.episode_status == "truncated"),
            "rollout/infra_errors": float((~valid).sum() + self.dropped),
            "rollout/episodes": float(ep.size + self.dropped),
            "rollout/tokens": float(tokens),
            "rollout/tokens_per_s": tokens / max(seconds, 1e-9),
            "rollout/seconds": seconds,
            "rollout/staleness": float(max(staleness)) if staleness else 0.0,
        }
        if self.trees:
            per_tree_nodes = np.bincount(s.traj, minlength=int(s.traj.max()) + 1 if s.n_rows else 0)
            per_tree_leaves = np.bincount(s.traj[ep], minlength=per_tree_nodes.size)
            materialised = int((everyone * s.n_tokens).sum())
            out |= {
                "tree/nodes": float(statistics.fmean(per_tree_nodes)) if per_tree_nodes.size else 0.0,
                "tree/leaves": float(statistics.fmean(per_tree_leaves)) if per_tree_leaves.size else 0.0,
                "tree/materialised_tokens": float(materialised),
                "tree/tokens_saved": float(materialised - tokens),
                "tree/tokens_saved_frac": (materialised - tokens) / materialised if materialised else 0.0,
            }
        return out


def _subtree_sum(steps: StepBatch, values: np.ndarray) -> np.ndarray:
    """Σ of ``values`` over each row and every row below it."""
    out = np.array(values, dtype=np.float64)
    for rows in steps.depth_levels[:0:-1]:
        np.add.at(out, steps.parent[rows], out[rows])
    return out


def _join_layouts(layouts: Sequence[TokenLayout]) -> TokenLayout:
    """The records' token layouts as one (rows in order; a record that cannot be laid out
    raises its ValueError)."""
    for layout in layouts:
        if layout.error is not None:
            raise ValueError(layout.error)
    if not layouts:
        return TokenLayout.empty()
    counts = np.array([(t.row_lengths.size, t.token_row.size) for t in layouts], np.int64)
    n_rows, n_tokens = counts.T
    joined = {f: np.concatenate([getattr(t, f) for t in layouts]) for f in _LAYOUT_FIELDS}
    joined["token_row"] += np.repeat(np.cumsum(n_rows) - n_rows, n_tokens)
    return TokenLayout(**joined)


_LAYOUT_FIELDS = [f.name for f in dataclasses.fields(TokenLayout) if f.name != "error"]
