"""GTPO-turn partial credit: failed rollouts earn credit for code close to passing rollouts.

    r^acc_{i,T_i} += α · (1/|P|) · Σ_{p∈P} sim(c_i, c_p)        if τ_i failed and P ≠ ∅     (§3.4)

P = the passing (``success``) valid rollouts of the same group; c_i = the code of rollout i,
all its turns' actions concatenated (``extract`` maps an action text to its code, default the
text itself); sim is clamped to [0, 1]. The credit is a turn reward on the failed rollout's
last step (and moves its outcome by the same amount), so α = 0.5 keeps it below a success.
Masked rollouts are neither credited nor part of P; P empty (all fail) or no failures → no
change.

``similarity``: pluggable ``(a, b) -> float``. The paper uses cosine similarity of text
embeddings (model unverified; the port uses a hosted API). The offline default here is the
cosine of character-trigram count vectors — a documented deviation, cheap and deterministic.

Parameters (``PartialCreditConfig``): ``alpha`` 0.5, ``similarity`` None (trigram cosine),
``extract`` None (identity). Needs ``action_text`` (build the batch with ``keep_text=True``).

Paper: Ding et al., arXiv 2511.14846.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import numpy as np
from pydantic import ConfigDict

from agentrl.algos.batch import StepBatch
from agentrl.algos.registry import AlgoConfig, register_shaper
from agentrl.algos.shapers.turn_reward import add_turn_rewards


class PartialCreditConfig(AlgoConfig):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    alpha: float = 0.5
    similarity: Callable[[str, str], float] | None = None
    extract: Callable[[str], str] | None = None


def trigram_cosine(a: str, b: str) -> float:
    """Cosine similarity of character-trigram count vectors (0 when either text is shorter than 3)."""
    va = Counter(a[i : i + 3] for i in range(len(a) - 2))
    vb = Counter(b[i : i + 3] for i in range(len(b) - 2))
    if not va or not vb:
        return 0.0
    dot = sum(count * vb[g] for g, count in va.items())
    return dot / math.sqrt(sum(c * c for c in va.values()) * sum(c * c for c in vb.values()))


class PartialCredit:
    """Shaper adding GTPO's partial credit to the last step of each failed rollout."""

    def __init__(self, config: PartialCreditConfig | None = None):
        self.config = config or PartialCreditConfig()

    def __call__(self, batch: StepBatch) -> StepBatch:
        batch.require_chain("gtpo partial credit")
        if batch.action_text is None:
            raise ValueError("partial credit needs the action texts: build the batch with keep_text=True")
        sim = self.config.similarity or trigram_cosine
        extract = self.config.extract or (lambda text: text)
        ep = batch.episode_rows
        valid, success, group = batch.episode_valid, batch.episode_success, batch.group[ep]
        codes = [""] * ep.size
        for i, part in zip(batch.traj, batch.action_text):
            codes[i] += extract(str(part)) + "\n"
        extra = np.zeros(batch.n_rows)
        for g in np.unique(group[valid]):
            members = np.flatnonzero(valid & (group == g))
            passing = members[success[members]]
            if passing.size == 0:
                continue
            for i in members[~success[members]]:
                scores = [min(max(float(sim(codes[i], codes[p])), 0.0), 1.0) for p in passing]
                extra[ep[i]] = self.config.alpha * float(np.mean(scores))
        return add_turn_rewards(batch, extra)


register_shaper(
    "gtpo_partial_credit",
    PartialCredit,
    PartialCreditConfig,
    needs=frozenset({"action_texts"}),
    chain_only=True,
)
