"""HumanEval grading: the program that runs a submission against the hidden tests.

A submission is either a complete function (``def <entry_point>(...)``, with or without its
imports) or only the body that continues the prompt, as in the benchmark's own completions.

* complete function → ``prompt + "    pass"`` (the stub brings the prompt's imports and helper
  functions), then the submission, which redefines the function;
* body only → ``prompt + body`` (the original HumanEval protocol).

Then the hidden ``test`` and ``check(<entry_point>)``. The program runs *inside the sandbox* in a
fresh isolated interpreter (``python -I``: no working directory or user site on ``sys.path``),
never in the episode's kernel, whose state the agent controls, and never in the host process.

It passes iff that interpreter exits with status 0 within the time limit *and* its last line of
output is a one-time token that the grader sends on stdin, which the program reads before the
submission runs and prints only after ``check`` returned — positive evidence that the tests ran
to the end, so a submission that ends the interpreter early with status 0 (``os._exit(0)``,
``sys.exit()``, ``quit()``) fails instead of passing. (Code in the same interpreter could still dig
the token out of the closure; the token only stops exits that skip the tests.)
"""

from __future__ import annotations

import re

from agentrl.env.parsing import ActionError

# First line of every grading program: read the token now, print it after check() returned.
_TOKEN_READER = "_agentrl_done = (lambda t: lambda: print('\\n' + t, flush=True))(__import__('sys').stdin.readline().strip())\n"

MAX_SUBMISSION_CHARS = 20_000
_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def submission_code(answer: str) -> str:
    """The code in an answer: the first fenced block if there is one, else the text itself."""
    match = _FENCE.search(answer)
    code = match.group(1) if match else answer
    if not code.strip():
        raise ActionError("The submission has no code: answer with the complete function in a ```python``` block.")
    if len(code) > MAX_SUBMISSION_CHARS:
        raise ActionError(f"The submission is too long ({len(code)} characters; at most {MAX_SUBMISSION_CHARS}).")
    return code


def grading_program(data: dict, code: str) -> str:
    """The grading program for task ``data`` (prompt, entry_point, test) and submission ``code``."""
    prompt, entry = data["prompt"], data["entry_point"]
    if re.search(rf"^\s*def\s+{re.escape(entry)}\s*\(", code, re.MULTILINE):
        head = f"{prompt.rstrip()}\n    pass\n\n\n{code}"
    else:
        head = prompt + code
    return f"{_TOKEN_READER}{head}\n\n\n{data['test']}\n\ncheck({entry})\n_agentrl_done()\n"


def completed(stdout: str, token: str) -> bool:
    """True if the program's last output line is ``token`` (the tests ran to the end)."""
    lines = stdout.rstrip("\n").splitlines()
    return bool(lines) and lines[-1] == token


def canonical_submission(data: dict) -> str:
    """The reference solution as a complete function: what the oracle submits."""
    return data["prompt"] + data["canonical_solution"]
