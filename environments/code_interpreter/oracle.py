'''The oracle's code: compute each math task's answer in the sandbox from the task's own data.

The oracle never reads the gold answer. It plays three turns:

1. a cell that computes ``answer`` from the task's inputs (the expression, the range, the number,
   or the worked solution of a GSM-style template);
2. a cell ``print(answer)`` — which only works if the kernel kept the first cell's state;
3. ``\\boxed{<what the second cell printed>}``.

So an oracle success proves the sandbox ran the code, kept state across turns, the observation
carried stdout back, and the answer checker accepted the value.
'''

from __future__ import annotations

import textwrap


def answer_cell(data: dict) -> str:
    """Python source that leaves the task's answer in the variable ``answer``."""
    if data.get("code") is not None:  # a tasks-file problem: the user's own code computes it
        return data["code"]
    family = data["family"]
    if family in ("basic_arithmetic", "chain_sum"):
        return f"answer = {data['expression']}"
    if family == "count_primes":
        return textwrap.dedent(
            f"""\
            start, end = {int(data['start'])}, {int(data['end'])}
            sieve = bytearray([1]) * (end + 1)
            sieve[:2] = b"\\x00\\x00"
            for p in range(2, int(end ** 0.5) + 1):
                if sieve[p]:
                    sieve[p * p :: p] = bytes(len(range(p * p, end + 1, p)))
            answer = sum(sieve[start : end + 1])"""
        )
    if family == "prime_factorization":
        return textwrap.dedent(
            f"""\
            n, factors, p = {int(data['number'])}, [], 2
            while p * p <= n:
                while n % p == 0:
                    factors.append(p)
                    n //= p
                p += 1
            if n > 1:
                factors.append(n)
            answer = " × ".join(map(str, factors))"""
        )
    if family == "gsm_symbolic":
        # The template's worked solution ends with "#### <value>", as in GSM8K.
        return f"solution = {data['solution']!r}\nanswer = solution.rsplit('####', 1)[1].strip()"
    raise ValueError(f"no oracle for math family {family!r}")
