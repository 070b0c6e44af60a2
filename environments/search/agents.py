"""Scripted agents for the search env beyond the generic oracle and random agents.

:class:`ClosedBookAgent` answers at once, without searching: the floor a search policy must beat.
For comparison questions ("Which has the larger area, A or B?") it names the first option
(a coin flip); otherwise it gives the most frequent gold answer among the *train* questions of
the same kind (a majority-class prior: e.g. "Africa" for country regions).

:class:`VerbatimSearchAgent` searches the question exactly as written, once, and answers the title
of the first document returned (without a parenthetical: "Titan (moon)" → "Titan"): what a
policy that never learned to reformulate a query or follow a hop gets.
"""

from __future__ import annotations

import functools
import re
from collections import Counter

from agentrl_envs.search.env import SearchEnv
from agentrl_envs.search.questions import strip_parenthetical
from agentrl_envs.search.retrieval import shared_retriever

_OPTIONS = re.compile(r", (.+?) or (.+?)\?$")


@functools.cache
def _priors(env_tasks) -> dict[str, str]:
    counts: dict[str, Counter] = {}
    for task in env_tasks.split("train"):
        counts.setdefault(task.data["kind"], Counter())[task.data["answers"][0]] += 1
    return {kind: c.most_common(1)[0][0] for kind, c in counts.items()}


class ClosedBookAgent:
    def __init__(self, env: SearchEnv):
        self.env = env

    def act(self, observation: str) -> str:
        question = self.env.question
        options = _OPTIONS.search(question.question)
        if question.kind == "country-compare" and options:
            return f"<answer>{options.group(1)}</answer>"
        return f"<answer>{_priors(self.env.tasks).get(question.kind, '')}</answer>"


class VerbatimSearchAgent:
    def __init__(self, env: SearchEnv):
        self.env = env

    def act(self, observation: str) -> str:
        if self.env.turn == 0:
            return f"<search>{self.env.question.question}</search>"
        first = self.env.retrieved[0] if self.env.retrieved else None
        title = shared_retriever().corpus[first].title if first else ""
        return f"<answer>{strip_parenthetical(title)}</answer>"
