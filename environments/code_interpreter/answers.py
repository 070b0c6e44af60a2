r"""Answer normalisation and equivalence for math tasks.

A model writes the same number many ways: ``1,234``, ``$1234``, ``1234.0``, ``\frac{3}{4}``,
``3/4``, ``0.75``, ``x = 12``, ``12 apples``, ``\text{12}``, ``−5`` (Unicode minus), ``1.2e3``.
:func:`parse_number` maps each of these to an exact :class:`fractions.Fraction` (decimal strings
are parsed exactly, so ``0.1`` is 1/10, not the nearest double), and :func:`numbers_match`
compares two of them:

    match(a, g)  ⇔  a == g  or  |a − g| ≤ max(abs_tol, rel_tol · |g|)

with ``rel_tol = 1e-6`` and ``abs_tol = 1e-9`` by default — exact for integers and fractions, and
forgiving of float round-off in answers computed with floats (``26.999999999999996`` for 27).

Prime factorisations are compared as multisets of integers (``2 × 2 × 5``, ``2*2*5``,
``2^2 \cdot 5`` and ``5 x 2 x 2`` all match), see :func:`parse_factors`.

Nothing here raises on bad input: an answer that cannot be parsed simply does not match.
"""

from __future__ import annotations

import re
from collections import Counter
from fractions import Fraction

REL_TOL = 1e-6
ABS_TOL = 1e-9
MAX_DIGITS = 1000
MAX_EXPONENT = 1000

_LATEX_WRAPPERS = re.compile(r"\\(?:text|textbf|mathrm|mathbf|boxed|fbox)\s*\{([^{}]*)\}")
_FRAC = re.compile(r"^(-?)\\[dt]?frac\s*\{([^{}]+)\}\s*\{([^{}]+)\}$")
_FRAC_SHORT = re.compile(r"^(-?)\\[dt]?frac(\d)(\d)$")  # \frac34
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?$")
_LEADING_NUMBER = re.compile(r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][+-]?\d+)?")


def _clean(text: str) -> str:
    """Strip the wrapping a model puts around a bare value."""
    s = text.strip()
    s = s.replace("−", "-").replace("–", "-").replace("\u00a0", " ")
    s = s.strip("$ ").strip()
    for _ in range(3):  # \text{...} inside \boxed{...} etc.
        s = _LATEX_WRAPPERS.sub(r"\1", s)
    s = s.replace("\\!", "").replace("\\,", "").replace("{,}", ",").replace("\\%", "%").replace("\\$", "")
    s = s.replace("\\left", "").replace("\\right", "")
    if "=" in s:  # "x = 12" -> "12"
        s = s.rsplit("=", 1)[1]
    s = s.strip().rstrip(".").strip()
    s = s.strip("$ ").strip()
    return s


def _plain_number(s: str) -> Fraction | None:
    s = s.strip()
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    if s.endswith("%"):
        s = s[:-1].strip()
    if not _NUMBER.match(s):
        return None
    mantissa, _, exponent = s.lower().partition("e")
    if len(mantissa) > MAX_DIGITS or (exponent and abs(int(exponent)) > MAX_EXPONENT):
        return None  # refuse values whose exact form would cost the host seconds to build
    return Fraction(s)


def parse_number(text: str) -> Fraction | None:
    r"""The exact value of a numeric answer, or None when ``text`` is not one number.

    Accepts integers, decimals, scientific notation, thousands separators (``1,234``), a
    leading ``$`` or trailing ``%`` (dropped: GSM-style answers carry no units), fractions
    ``a/b`` and ``\frac{a}{b}``, a trailing unit word (``12 apples``) and ``x = …``.
    """
    if not isinstance(text, str):
        return None
    s = _clean(text)
    if not s:
        return None
    value = _plain_number(s)
    if value is not None:
        return value
    match = _FRAC.match(s) or _FRAC_SHORT.match(s)
    if match:
        sign, num, den = match.groups()
        return _ratio(sign + num, den)
    if s.count("/") == 1:
        num, den = s.split("/")
        return _ratio(num, den)
    # "12 apples", "12.5 dollars": a number followed by words only.
    lead = _LEADING_NUMBER.match(s)
    if lead and lead.group(0) and re.fullmatch(r"\s+[A-Za-z][A-Za-z .]*", s[lead.end():]):
        return _plain_number(lead.group(0))
    return None


def _ratio(num: str, den: str) -> Fraction | None:
    n, d = _plain_number(num.strip().strip("()")), _plain_number(den.strip().strip("()"))
    if n is None or d is None or d == 0:
        return None
    return n / d


def numbers_match(answer: str, gold: str | float | Fraction, rel_tol: float = REL_TOL,
                  abs_tol: float = ABS_TOL) -> bool:
    """Whether ``answer`` denotes the same number as ``gold`` (see the module docstring)."""
    a = parse_number(answer)
    g = gold if isinstance(gold, Fraction) else parse_number(str(gold))
    if a is None or g is None:
        return False
    if a == g:
        return True
    return abs(a - g) <= max(Fraction(abs_tol), Fraction(rel_tol) * abs(g))


def parse_factors(text: str) -> Counter[int] | None:
    r"""A factorisation as a multiset of integers (``2^2 × 5`` → {2: 2, 5: 1}); None if malformed."""
    if not isinstance(text, str):
        return None
    s = _clean(text).replace("\\times", "×").replace("\\cdot", "×").replace("·", "×").replace("*", "×")
    s = re.sub(r"(?<=\d)\s*[xX]\s*(?=\d)", "×", s)
    parts = [p.strip() for p in re.split(r"[×,]", s)]
    factors: Counter[int] = Counter()
    for part in parts:
        match = re.fullmatch(r"(\d+)(?:\s*(?:\^|\*\*)\s*\{?(\d+)\}?)?", part)
        if match is None:
            return None
        base, exponent = int(match.group(1)), int(match.group(2) or 1)
        if exponent > 64:
            return None
        factors[base] += exponent
    return factors


def factors_match(answer: str, gold: str) -> bool:
    """Whether two factorisations list the same factors with the same multiplicities."""
    a, g = parse_factors(answer), parse_factors(gold)
    return a is not None and g is not None and a == g


ANSWER_KINDS = {"number": numbers_match, "factors": factors_match}


def answers_match(answer: str, gold: str, kind: str = "number") -> bool:
    """Compare ``answer`` with ``gold`` under the task's answer kind (``number`` or ``factors``)."""
    return ANSWER_KINDS[kind](answer, gold)
