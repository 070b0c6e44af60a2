"""Answer scoring: Search-R1's exact match, substring match and token F1, and its format reward.

Normalisation (SQuAD / Search-R1 ``qa_em.py``)::

    normalize(s) = collapse_whitespace(remove_articles(remove_punctuation(lower(s))))

with articles ``a``, ``an``, ``the`` removed as whole words. Then, over the gold answers ``G``::

    EM(p)    = max_g [normalize(p) == normalize(g)]
    subEM(p) = max_g [normalize(g) is a substring of normalize(p)]
    F1(p)    = max_g 2·P·R / (P + R),  P = |common| / |tokens(p)|,  R = |common| / |tokens(g)|

where ``common`` is the multiset intersection of the normalised tokens.

Format-aware reward (Search-R1 ``qa_em_format.py``; Tree-GRPO uses the same table). With a
format score ``s_f``, a retrieval score ``s_r`` and a final-format score ``s_final``:

====================================================  ==============
case                                                  reward
====================================================  ==============
correct answer, valid format                          1
correct answer, invalid format                        1 − s_f
wrong or no answer, valid format, gold inside
an ``<information>`` block                            s_f + s_r
wrong or no answer, valid format                      s_f
wrong answer, invalid format                          s_final
no answer, invalid format                             0
====================================================  ==============

With all three scores 0 (the default) the reward is plain EM.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
_THINK = r"(?:<think>.*?</think>\s*)?"
_WELL_FORMED = (
    re.compile(rf"^\s*{_THINK}<search>.*?</search>\s*$", re.DOTALL),
    re.compile(rf"^\s*{_THINK}<answer>.*?</answer>\s*$", re.DOTALL),
    re.compile(rf"^\s*{_THINK}(?:<tool_call>.*?</tool_call>\s*)+$", re.DOTALL),
)
_TAGS = re.compile(r"<(/?)(think|search|answer|information|tool_call)>")


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and articles, collapse whitespace."""
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str | None, golds: Sequence[str]) -> float:
    if prediction is None:
        return 0.0
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in golds))


def substring_match(prediction: str | None, golds: Sequence[str]) -> float:
    if prediction is None:
        return 0.0
    pred = normalize_answer(prediction)
    return float(any(normalize_answer(g) in pred for g in golds if normalize_answer(g)))


def f1_score(prediction: str | None, golds: Sequence[str]) -> float:
    if prediction is None:
        return 0.0
    pred_tokens = normalize_answer(prediction).split()
    best = 0.0
    for gold in golds:
        gold_tokens = normalize_answer(gold).split()
        common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
        if common == 0:
            continue
        precision, recall = common / len(pred_tokens), common / len(gold_tokens)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def well_formed(action: str) -> bool:
    """One turn is well formed: an optional ``<think>`` block, then exactly one ``<search>``,
    one ``<answer>`` or one or more ``<tool_call>`` blocks, with no stray text or tags."""
    return any(p.match(action) for p in _WELL_FORMED) and _balanced(action)


def _balanced(action: str) -> bool:
    """Protocol tags are closed in order and never nested (no ``<search>`` inside ``<think>``)."""
    stack: list[str] = []
    for match in _TAGS.finditer(action):
        closing, tag = match.group(1) == "/", match.group(2)
        if closing:
            if not stack or stack[-1] != tag:
                return False
            stack.pop()
        else:
            if stack:
                return False  # nested protocol tags
            stack.append(tag)
    return not stack


def format_reward(
    answer: str | None,
    golds: Sequence[str],
    valid_format: bool,
    information: Sequence[str],
    format_score: float = 0.0,
    retrieval_score: float = 0.0,
    final_format_score: float = 0.0,
) -> float:
    """Search-R1's format-aware reward (the table in the module docstring)."""
    correct = exact_match(answer, golds) == 1.0
    if correct:
        return 1.0 if valid_format else 1.0 - format_score
    if valid_format:
        if any(substring_match(block, golds) for block in information):
            return format_score + retrieval_score
        return format_score
    return final_format_score if answer is not None else 0.0
