"""Per-row reference implementations of every estimator, written from the formulas in
shared/reference/estimators.md as plain Python loops over plain lists (no shared code with
agentrl.algos). The property tests compare the vectorised estimators against these.

A chain batch is a list of trajectories, each a dict with ``group``, ``valid``, ``success`` and
per-step lists ``rewards``, ``states`` (int, −1 = none), ``action_valid``, ``tools`` and
``entropy`` (one list of token entropies per step). The outcome is Σ rewards.
A tree is a dict with ``group``, ``parents`` (one per node, −1 = root) and ``leaves``
(``(node, reward, valid)`` tuples); its rows are its nodes in order.
"""

from __future__ import annotations

import difflib
import math

EPS = 1e-6


def z_scores(values, mode="mean_std_norm", singleton="zero", weights=None, members=None):
    """GRPO normalisation of ``values`` (one group): unbiased std, ε = 1e-6, singleton rule."""
    n = len(values)
    weights = weights or [1.0] * n
    members = n if members is None else members
    if members < 2:
        if singleton == "zero":
            return [0.0] * n
        return [x / (1.0 + EPS) if mode == "mean_std_norm" else x for x in values]
    total = sum(weights)
    mean = sum(w * x for w, x in zip(weights, values)) / total
    if mode == "mean_norm":
        return [x - mean for x in values]
    std = math.sqrt(sum(w * (x - mean) ** 2 for w, x in zip(weights, values)) / max(total - 1.0, 1.0))
    return [(x - mean) / (std + EPS) for x in values]


def by_key(items, key):
    groups: dict = {}
    for i, item in enumerate(items):
        groups.setdefault(key(item), []).append(i)
    return groups


def episode_scores(trajs, scores, mode="mean_std_norm", singleton="zero", step_weighted=False):
    """One advantage per trajectory: z-score of ``scores`` over the valid trajectories of its group."""
    out = [0.0] * len(trajs)
    valid = [i for i, t in enumerate(trajs) if t["valid"]]
    for members in by_key(valid, lambda i: trajs[i]["group"]).values():
        idx = [valid[m] for m in members]
        weights = [float(len(trajs[i]["rewards"])) for i in idx] if step_weighted else None
        for i, a in zip(idx, z_scores([scores[i] for i in idx], mode, singleton, weights, len(idx))):
            out[i] = a
    return out


def per_row(trajs, per_traj):
    return [per_traj[i] for i, t in enumerate(trajs) for _ in t["rewards"]]


def outcome(t):
    return sum(t["rewards"])


def grpo(trajs, mode="mean_std_norm", episode_stats="trajectory"):
    scores = [outcome(t) for t in trajs]
    return per_row(trajs, episode_scores(trajs, scores, mode, step_weighted=episode_stats == "step"))


def rloo(trajs):
    out = [0.0] * len(trajs)
    for g in {t["group"] for t in trajs}:
        idx = [i for i, t in enumerate(trajs) if t["valid"] and t["group"] == g]
        if len(idx) < 2:
            continue
        for i in idx:
            others = [outcome(trajs[j]) for j in idx if j != i]
            out[i] = outcome(trajs[i]) - sum(others) / len(others)
    return per_row(trajs, out)


def returns(rewards, gamma):
    out, running = [0.0] * len(rewards), 0.0
    for k in range(len(rewards) - 1, -1, -1):
        running = rewards[k] + gamma * running
        out[k] = running
    return out


def anchors(trajs, keys, match, thresh):
    """Anchor-group label per row: (group, state) for exact, (group, cluster) for similarity."""
    labels, clusters = [], {}
    for t in trajs:
        for s in t["states"][: len(t["rewards"])]:
            if not t["valid"] or s < 0:
                labels.append(None)
            elif match == "exact":
                labels.append((t["group"], s))
            else:
                reps = clusters.setdefault(t["group"], [])
                found = next(
                    (
                        c
                        for c, rep in enumerate(reps)
                        if difflib.SequenceMatcher(None, rep, keys[s]).ratio() >= thresh
                    ),
                    None,
                )
                if found is None:
                    reps.append(keys[s])
                    found = len(reps) - 1
                labels.append((t["group"], found))
    return labels


def gigpo(
    trajs,
    keys=(),
    *,
    gamma=0.95,
    omega=1.0,
    mode="mean_std_norm",
    episode_stats="trajectory",
    anchor_match="exact",
    thresh=0.95,
    coef=0.1,
    penalty_mode="row",
):
    rows = [(i, k) for i, t in enumerate(trajs) for k in range(len(t["rewards"]))]
    invalid = [not trajs[i]["action_valid"][k] for i, k in rows]
    if penalty_mode == "discounted":
        trajs = [
            dict(t, rewards=[r - coef * (not v) for r, v in zip(t["rewards"], t["action_valid"])])
            for t in trajs
        ]
    ret = [r for t in trajs for r in returns(t["rewards"], gamma)]
    row_pen = [coef * x if penalty_mode == "row" else 0.0 for x in invalid]
    ret = [r - p for r, p in zip(ret, row_pen)]
    n = len(rows)
    a_e = [0.0] * n
    if episode_stats == "trajectory":
        per_traj = episode_scores(trajs, [outcome(t) for t in trajs], mode)
        a_e = [per_traj[i] - row_pen[r] if trajs[i]["valid"] else 0.0 for r, (i, _) in enumerate(rows)]
    else:
        valid_rows = [r for r, (i, _) in enumerate(rows) if trajs[i]["valid"]]
        for members in by_key(valid_rows, lambda r: trajs[rows[r][0]]["group"]).values():
            idx = [valid_rows[m] for m in members]
            n_traj = len({rows[r][0] for r in idx})
            scores = [outcome(trajs[rows[r][0]]) - row_pen[r] for r in idx]
            for r, a in zip(idx, z_scores(scores, mode, "zero", members=n_traj)):
                a_e[r] = a
    a_s = [0.0] * n
    labels = anchors(trajs, keys, anchor_match, thresh)
    for label, idx in by_key(range(n), lambda r: labels[r]).items():
        if label is not None:
            for r, a in zip(idx, z_scores([ret[r] for r in idx], mode, "zero")):
                a_s[r] = a
    return [e + omega * s for e, s in zip(a_e, a_s)]


def gtpo_turn(trajs, gamma=0.9, penalty=0.1, scope="group"):
    ret = [
        r
        for t in trajs
        for r in returns([r - penalty * (not v) for r, v in zip(t["rewards"], t["action_valid"])], gamma)
    ]
    rows = [i for i, t in enumerate(trajs) for _ in t["rewards"]]
    out = [0.0] * len(rows)
    valid_rows = [r for r, i in enumerate(rows) if trajs[i]["valid"]]
    key = (lambda r: trajs[rows[r]]["group"]) if scope == "group" else (lambda r: 0)
    for members in by_key(valid_rows, key).values():
        idx = [valid_rows[m] for m in members]
        for r, a in zip(idx, z_scores([ret[r] for r in idx], members=len({rows[r] for r in idx}))):
            out[r] = a
    return out


def partial_credit(trajs, sim, alpha=0.5):
    """GTPO partial credit: a failed valid τ_i gets α·mean_{p∈P} sim(c_i, c_p) on its last turn."""
    codes = ["".join(text + "\n" for text in t["texts"]) for t in trajs]
    out = []
    for i, t in enumerate(trajs):
        passing = [j for j, u in enumerate(trajs) if u["valid"] and u["success"] and u["group"] == t["group"]]
        rewards = list(t["rewards"])
        if t["valid"] and not t["success"] and passing:
            scores = [min(max(sim(codes[i], codes[j]), 0.0), 1.0) for j in passing]
            rewards[-1] += alpha * sum(scores) / len(scores)
        out.append(dict(t, rewards=rewards))
    return out


def shares(weights_by_item):
    """H/ΣH (or (1/H)/Σ(1/H)) times the count; uniform when the weights sum to 0."""
    total, count = sum(weights_by_item.values()), len(weights_by_item)
    return {k: (w / total if total > 0 else 1.0 / count) * count for k, w in weights_by_item.items()}


def grpo_s(trajs, beta1=1.0, beta2=0.1):
    h = []
    for t in trajs:
        tokens = [e for step in t["entropy"] for e in step]
        h.append(sum(tokens) / len(tokens) if tokens else 0.0)
    shaped = [0.0] * len(trajs)
    for g in {t["group"] for t in trajs}:
        for correct in (True, False):
            idx = [
                i for i, t in enumerate(trajs) if t["valid"] and t["group"] == g and t["success"] == correct
            ]
            if not idx:
                continue
            weight = {i: h[i] if correct else 1.0 / (h[i] + 1e-6) for i in idx}
            for i, share in shares(weight).items():
                shaped[i] = beta1 * outcome(trajs[i]) + beta2 * share if correct else -beta1 - beta2 * share
    return per_row(trajs, episode_scores(trajs, shaped))


def gtpo_entropy(trajs, alpha1=1.0, alpha2=0.1, norm="joint"):
    """One advantage per policy token (steps' completions in order)."""
    tokens = []  # (traj, position, entropy)
    for i, t in enumerate(trajs):
        flat = [e for step in t["entropy"] for e in step]
        tokens += [(i, p, e) for p, e in enumerate(flat)]
    shaped = [0.0] * len(tokens)
    live = [k for k, (i, _, _) in enumerate(tokens) if trajs[i]["valid"]]
    slots = by_key(
        live, lambda k: (trajs[tokens[k][0]]["group"], tokens[k][1], trajs[tokens[k][0]]["success"])
    )
    for (_, _, correct), members in slots.items():
        idx = [live[m] for m in members]
        weight = {k: tokens[k][2] if correct else 1.0 / (tokens[k][2] + 1e-6) for k in idx}
        for k, share in shares(weight).items():
            i = tokens[k][0]
            shaped[k] = alpha1 * outcome(trajs[i]) + alpha2 * share if correct else -alpha1 - alpha2 * share
    out = [0.0] * len(tokens)
    key = (
        (lambda k: trajs[tokens[k][0]]["group"])
        if norm == "joint"
        else (lambda k: (trajs[tokens[k][0]]["group"], trajs[tokens[k][0]]["success"]))
    )
    for members in by_key(live, key).values():
        idx = [live[m] for m in members]
        responses = len({tokens[k][0] for k in idx})
        for k, a in zip(idx, z_scores([shaped[k] for k in idx], members=responses)):
            out[k] = a
    return out


def empg(trajs, base, k=1.0, k_prime=1.0, zeta=0.1):
    rows = [(i, s) for i, t in enumerate(trajs) for s in range(len(t["rewards"]))]
    valid = [trajs[i]["valid"] for i, _ in rows]
    h = [sum(trajs[i]["entropy"][s]) / max(len(trajs[i]["entropy"][s]), 1) for i, s in rows]
    live = [r for r in range(len(rows)) if valid[r]]
    if not live:
        return [0.0] * len(rows)
    lo, hi = min(h[r] for r in live), max(h[r] for r in live)
    hn = [(x - lo) / (hi - lo + EPS) for x in h]
    mean_scale = sum(math.exp(-k * hn[r]) for r in live) / len(live)
    out = [0.0] * len(rows)
    for r in live:
        i, s = rows[r]
        nxt = r + 1 if s + 1 < len(trajs[i]["rewards"]) else None
        f = math.exp(-k_prime * hn[nxt]) if nxt is not None else 0.0
        out[r] = math.exp(-k * hn[r]) / mean_scale * base[r] + zeta * f
    mean = sum(out[r] for r in live) / len(live)
    return [out[r] - mean if valid[r] else 0.0 for r in range(len(rows))]


def otc_grpo_outcomes(trajs, c=1.0):
    """OTC-GRPO shaped outcome per trajectory (α = 1, no running minimum)."""
    out = []
    for t in trajs:
        m = sum(t["tools"][: len(t["rewards"])])
        peers = [
            sum(u["tools"][: len(u["rewards"])])
            for u in trajs
            if u["valid"] and u["group"] == t["group"] and outcome(u) > 0
        ]
        r = outcome(t)
        if not t["valid"] or not peers:
            out.append(r)
            continue
        n = min(peers)
        if n == 0:
            tool = 1.0 if m == 0 else math.cos(m * math.pi / (2 * m + c))
        else:
            tool = math.sin((2 * m * n / (m + n)) * math.pi / (2 * n))
        out.append(r * tool)
    return out


def tree_leaf_advantages(trees, variant="sum", mode="mean_std_norm"):
    """Tree-GRPO advantage of every leaf (trees in order, leaves in recorded order)."""
    leaves = [(ti, tree["group"], r, v) for ti, tree in enumerate(trees) for _, r, v in tree["leaves"]]
    out = [0.0] * len(leaves)

    def z_over(key, values):
        res = [0.0] * len(leaves)
        live = [j for j, lf in enumerate(leaves) if lf[3]]
        for members in by_key(live, lambda j: key(leaves[j])).values():
            idx = [live[m] for m in members]
            for j, a in zip(idx, z_scores([values[j] for j in idx], mode)):
                res[j] = a
        return res

    reward = [lf[2] for lf in leaves]
    intra = z_over(lambda lf: lf[0], reward)
    if variant == "intra":
        return intra
    inter = z_over(lambda lf: lf[1], reward)
    if variant == "2norm":
        return z_over(lambda lf: lf[0], inter)
    out = [a + b for a, b in zip(inter, intra)]
    return out


def tree_node_credit(trees, leaf_adv):
    """Per node: Σ of the advantages of the leaves whose root path contains it (materialised paths)."""
    out, j = [], 0
    for tree in trees:
        credit = [0.0] * len(tree["parents"])
        for node, _, _ in tree["leaves"]:
            while node >= 0:
                credit[node] += leaf_adv[j]
                node = tree["parents"][node]
            j += 1
        out += credit
    return out
