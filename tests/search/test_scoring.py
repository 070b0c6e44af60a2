"""Search-R1 answer normalisation, EM / subEM / F1 and the format-reward table, worked by hand."""

import pytest
from agentrl_envs.search.scoring import (
    exact_match,
    f1_score,
    format_reward,
    normalize_answer,
    substring_match,
    well_formed,
)


def test_normalization_drops_case_punctuation_articles_and_spaces():
    assert normalize_answer("The Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("  A  tale of\tan apple ") == "tale of apple"
    assert normalize_answer("Theatre") == "theatre"  # "the" only as a whole word


def test_exact_and_substring_match():
    assert exact_match("The Eiffel Tower!", ["eiffel tower"]) == 1.0
    assert exact_match("Eiffel Tower in Paris", ["eiffel tower"]) == 0.0
    assert substring_match("Eiffel Tower in Paris", ["eiffel tower"]) == 1.0
    assert exact_match("Paris", ["London", "paris."]) == 1.0
    assert exact_match(None, ["x"]) == substring_match(None, ["x"]) == 0.0


def test_f1_by_hand():
    # pred tokens [eiffel, tower, in, paris], gold [eiffel, tower]: P = 2/4, R = 1, F1 = 2·0.5·1/1.5
    assert f1_score("Eiffel Tower in Paris", ["eiffel tower"]) == pytest.approx(2 / 3)
    # best over golds: vs "tower bridge" P = 1/2, R = 1/2 → 0.5; vs "eiffel tower" → 2/3
    assert f1_score("Eiffel Tower in Paris", ["tower bridge", "eiffel tower"]) == pytest.approx(2 / 3)
    assert f1_score("moon", ["sun"]) == 0.0


@pytest.mark.parametrize(
    ("action", "ok"),
    [
        ("<search>x</search>", True),
        ("<think>hmm</think>\n<search>x</search>", True),
        ("<think>hmm</think> <answer>Paris</answer>", True),
        ('<tool_call>{"name": "search"}</tool_call>\n<tool_call>{}</tool_call>', True),
        ("I will search. <search>x</search>", False),  # stray text
        ("<search>x</search><answer>y</answer>", False),  # two actions
        ("<think><search>x</search></think><answer>y</answer>", False),  # nested
        ("<answer>y", False),
    ],
)
def test_well_formed(action, ok):
    assert well_formed(action) is ok


@pytest.mark.parametrize(
    ("answer", "valid", "info", "expected"),
    [
        ("Paris", True, [], 1.0),  # correct, valid format
        ("Paris", False, [], 0.8),  # correct, invalid: 1 − s_f
        ("Lyon", True, ["Doc 1(Title: Paris) Paris is the capital"], 0.3),  # s_f + s_r
        ("Lyon", True, ["Doc 1(Title: Rome) Rome"], 0.2),  # s_f
        (None, True, [], 0.2),  # no answer, valid: s_f
        ("Lyon", False, [], 0.1),  # wrong, invalid: s_final
        (None, False, ["Paris"], 0.0),  # no answer, invalid
    ],
)
def test_format_reward_table(answer, valid, info, expected):
    assert format_reward(answer, ["Paris"], valid, info, 0.2, 0.1, 0.1) == pytest.approx(expected)
