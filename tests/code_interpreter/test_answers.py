from collections import Counter
from fractions import Fraction

import pytest
from agentrl_envs.code_interpreter.answers import answers_match, numbers_match, parse_factors, parse_number


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", Fraction(42)),
        ("  -7 ", Fraction(-7)),
        ("−5", Fraction(-5)),  # Unicode minus
        ("1,234", Fraction(1234)),
        ("1,234,567.5", Fraction(2469135, 2)),
        ("$18", Fraction(18)),
        ("\\$18.50", Fraction(37, 2)),
        ("24.0", Fraction(24)),
        ("0.1", Fraction(1, 10)),
        (".5", Fraction(1, 2)),
        ("1.2e3", Fraction(1200)),
        ("3/4", Fraction(3, 4)),
        ("-3/4", Fraction(-3, 4)),
        ("\\frac{3}{4}", Fraction(3, 4)),
        ("-\\dfrac{10}{4}", Fraction(-5, 2)),
        ("\\frac34", Fraction(3, 4)),
        ("x = 12", Fraction(12)),
        ("12 apples", Fraction(12)),
        ("\\text{560}", Fraction(560)),
        ("30%", Fraction(30)),
        ("2887.5.", Fraction(5775, 2)),
    ],
)
def test_parse_number_accepts_common_spellings(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize(
    "text", ["", "abc", "1/0", "1,2", "2 or 3", "1e5000", "9" * 2000, "1 2", "\\frac{a}{b}", None]
)
def test_parse_number_rejects_non_numbers_without_raising(text):
    assert parse_number(text) is None


def test_numbers_match_is_exact_for_integers_and_tolerant_of_float_roundoff():
    assert numbers_match("27", "27")
    assert numbers_match("26.999999999999996", "27")  # |diff| = 4e-15 <= 1e-6 * 27
    assert not numbers_match("26.99", "27")  # 0.01 > 2.7e-5
    assert numbers_match("0.75", "3/4")
    assert numbers_match("\\frac{1}{3}", "0.3333333333")  # |diff| = 3.3e-11 <= 3.3e-7
    assert not numbers_match("0.333", "1/3")  # |diff| = 3.3e-4 > 3.3e-7
    assert numbers_match("0", "0")
    assert not numbers_match("1e-8", "0")  # abs_tol 1e-9
    assert numbers_match("5e-10", "0")
    assert numbers_match("101", "100", rel_tol=0.01)
    assert not numbers_match("seven", "7")


def test_factors_compare_as_multisets():
    assert parse_factors("2 × 2 × 5 × 7 × 7") == Counter({2: 2, 5: 1, 7: 2})
    assert parse_factors("2^2 \\cdot 5 \\cdot 7^{2}") == Counter({2: 2, 5: 1, 7: 2})
    assert answers_match("7*7*5*2*2", "2 × 2 × 5 × 7 × 7", kind="factors")
    assert answers_match("2 x 2 x 3", "2 × 2 × 3", kind="factors")
    assert answers_match("139", "139", kind="factors")
    assert not answers_match("2 × 5 × 7 × 7", "2 × 2 × 5 × 7 × 7", kind="factors")
    assert not answers_match("2 × two", "2 × 2", kind="factors")
    assert parse_factors("2^99999") is None
