"""GiGPO anchor-state groups: which rows of a GRPO group were taken from the same state.

``exact`` (default): rows with equal ``state`` id in the same ``group`` form one anchor group;
the key has no time index, so a state reached at different steps, or revisited by the same
trajectory, is one group. ``state = −1`` (the env gave no key) makes the row a singleton.

Masked rows (``valid`` False, infra failures) take part in no anchor group in either mode
(id −1): they never join, found or split a group, so they cannot change which valid rows are
compared with each other (in ``similarity`` mode a masked key would otherwise become a cluster
representative and pull valid rows together).

``similarity`` (text; verl-agent PR #159 for search): a greedy single pass per group — each
distinct state key, in order of first appearance, joins the **first** cluster whose
representative (its first member) has ``difflib.SequenceMatcher(None, rep, key).ratio() ≥
thresh``, else starts a new cluster. Equal keys always land in one cluster, so the pass runs
over distinct keys only (O(distinct · clusters) ratio calls per group, pruned by difflib's
cheap upper bounds, which never change the result).
"""

from __future__ import annotations

import difflib

import numpy as np

from agentrl.algos.batch import StepBatch
from agentrl.algos.stats import dense_ids


def exact_anchors(batch: StepBatch) -> tuple[np.ndarray, int]:
    """Anchor-group id per row (ids in ``0..K-1``, −1 for rows without a state key or masked).

    A state seen in one GRPO group only (the common case: most states carry task content) is
    its own anchor id; only rows whose state occurs in several groups are split by group, so
    the usual cost is O(rows) with no sort.
    """
    state, group = batch.state, batch.group
    has = (state >= 0) & batch.valid
    if not has.any():
        return np.full(batch.n_rows, -1, dtype=np.int64), 0
    n_states = int(state.max()) + 1
    s, g = state[has], group[has]
    lo = np.full(n_states, np.iinfo(np.int64).max)
    hi = np.full(n_states, -1)
    np.minimum.at(lo, s, g)
    np.maximum.at(hi, s, g)
    anchor = np.where(has, state, -1)
    shared = has & (lo != hi)[np.where(has, state, 0)]
    if not shared.any():
        return anchor, n_states
    split, n_split = dense_ids(group[shared], state[shared])
    anchor[shared] = n_states + split
    return anchor, n_states + n_split


def similarity_anchors(batch: StepBatch, thresh: float) -> tuple[np.ndarray, int]:
    """Dense anchor-group id per row from greedy first-match clustering of state-key text
    (−1 for rows without a state key or masked)."""
    if not 0.0 < thresh < 1.0:
        raise ValueError(f"similarity threshold must be in (0, 1), got {thresh}")
    has = (batch.state >= 0) & batch.valid
    if not batch.state_keys and has.any():
        raise ValueError("similarity anchors need the state-key text: the batch has no state_keys")
    rows = np.flatnonzero(has)
    pair, _ = dense_ids(batch.group[rows], batch.state[rows])
    _, first = np.unique(pair, return_index=True)  # first row of each distinct (group, state)
    first_rows = rows[np.sort(first)]
    cluster_of: dict[tuple[int, int], int] = {}
    reps: dict[int, list[tuple[str, int]]] = {}
    n_clusters = 0
    for r in first_rows:
        g, s = int(batch.group[r]), int(batch.state[r])
        text = batch.state_keys[s]
        chosen = None
        for rep_text, cid in reps.setdefault(g, []):
            m = difflib.SequenceMatcher(None, rep_text, text)
            if m.real_quick_ratio() >= thresh and m.quick_ratio() >= thresh and m.ratio() >= thresh:
                chosen = cid
                break
        if chosen is None:
            chosen = n_clusters
            n_clusters += 1
            reps[g].append((text, chosen))
        cluster_of[(g, s)] = chosen
    out = np.full(batch.n_rows, -1, dtype=np.int64)
    out[rows] = [cluster_of[(int(g), int(s))] for g, s in zip(batch.group[rows], batch.state[rows])]
    return out, n_clusters
