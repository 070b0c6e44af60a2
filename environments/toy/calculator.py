"""Shopping questions that need tools: look prices up, compute the total, answer.

Each task asks for the cost of a basket (e.g. "3 apples and 5 pears"). Prices differ per task
and are only available through the ``lookup`` tool; ``calculator`` evaluates arithmetic. The
agent calls tools with ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` (several per
turn allowed) and ends with ``<answer>NUMBER</answer>``.

Reward: 1 for a correct answer (within 1e-6), else 0. ``tool_calls`` counts the calls run in a
step — the number OTC's tool-cost shaping reads. ``state_key`` is the set of facts learned so
far, so steps that reached the same knowledge share an anchor group.
"""

from __future__ import annotations

import ast
import hashlib
import json
import operator

import numpy as np
from pydantic import Field

from agentrl.env import ActionError, EnvConfig, StepOutcome, Task, TaskSet, TextEnv
from agentrl.env.parsing import extract_answer, has_tool_call, parse_tool_calls
from agentrl.types import ToolSpec

ITEMS = ["apple", "pear", "banana", "lemon", "melon", "peach", "plum", "mango", "kiwi", "grape"]
PLURALS = {item: item + ("es" if item.endswith(("ch", "o")) else "s") for item in ITEMS}
SINGULARS = {**{item: item for item in ITEMS}, **{plural: item for item, plural in PLURALS.items()}}

_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def evaluate_arithmetic(expression: str) -> float:
    """Evaluate ``+ - * /`` and parentheses over numbers; anything else is an ActionError."""
    if len(expression) > 200:
        raise ActionError("Expression too long (max 200 characters).")
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        raise ActionError(f"Cannot parse expression {expression!r}.") from None

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Div) and right == 0:
                raise ActionError("Division by zero.")
            return _OPERATORS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.operand))
        raise ActionError("Only numbers, + - * / and parentheses are allowed.")

    return walk(tree)


def format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


class CalculatorConfig(EnvConfig):
    num_tasks: int = Field(default=500, ge=1)
    test_fraction: float = Field(default=0.2, ge=0.0, le=1.0)
    max_turns: int = Field(default=8, ge=1)


class CalculatorEnv(TextEnv):
    Config = CalculatorConfig
    instructions = (
        "Answer the shopping question: look prices up, compute the total, answer. Call tools as "
        "<tool_call>{\"name\": ..., \"arguments\": {...}}</tool_call> (several per turn allowed); "
        "end with <answer>NUMBER</answer>."
    )
    tools = [
        ToolSpec(
            name="lookup",
            description="Unit price of an item.",
            parameters={
                "type": "object",
                "properties": {"item": {"type": "string"}},
                "required": ["item"],
                "additionalProperties": False,
            },
        ),
        ToolSpec(
            name="calculator",
            description="Evaluate + - * / and parentheses.",
            parameters={
                "type": "object",
                "properties": {"expression": {"type": "string"}},
                "required": ["expression"],
                "additionalProperties": False,
            },
        ),
    ]

    def build_tasks(self) -> TaskSet:
        items = []
        for i in range(self.config.num_tasks):
            task_id = f"shop-{i:04d}"
            rng = np.random.default_rng(int.from_bytes(hashlib.sha256(task_id.encode()).digest()[:8], "big"))
            names = [str(n) for n in rng.choice(ITEMS, size=2, replace=False)]
            counts = [int(n) for n in rng.integers(2, 10, size=2)]
            prices = {name: int(p) for name, p in zip(ITEMS, rng.integers(1, 20, size=len(ITEMS)))}
            items.append((task_id, {"items": names, "counts": counts, "prices": prices}))
        return TaskSet.from_items(items, test_fraction=self.config.test_fraction)

    def question(self) -> str:
        data = self.task.data
        (a, b), (n_a, n_b) = data["items"], data["counts"]
        return f"How much do {n_a} {PLURALS[a]} and {n_b} {PLURALS[b]} cost in total?"

    def answer(self) -> float:
        data = self.task.data
        return sum(n * data["prices"][item] for item, n in zip(data["items"], data["counts"]))

    def _reset(self, task: Task) -> str:
        self.known: dict[str, str] = {}
        return self.question()

    def _step(self, action: str) -> StepOutcome:
        if has_tool_call(action):
            try:
                calls = parse_tool_calls(action, self.tools)
            except ActionError as exc:
                return StepOutcome(f"Error: {exc}", valid_action=False, error=str(exc))
            responses = [self._run_tool(call.name, call.arguments) for call in calls]
            body = "\n".join(f"<tool_response>{json.dumps(r)}</tool_response>" for r in responses)
            return StepOutcome(body, tool_calls=len(calls))
        answer = extract_answer(action)
        if answer is None:
            message = "Call a tool with <tool_call>...</tool_call> or answer with <answer>NUMBER</answer>."
            return StepOutcome(f"Error: {message}", valid_action=False, error=message)
        try:
            correct = abs(float(answer.replace(",", "")) - self.answer()) < 1e-6
        except ValueError:
            correct = False
        return StepOutcome(
            "Correct." if correct else "Wrong answer.", reward=float(correct), terminated=True, success=correct
        )

    def _run_tool(self, name: str, arguments: dict) -> dict:
        if name == "lookup":
            item = SINGULARS.get(arguments["item"].strip().lower())
            prices = self.task.data["prices"]
            if item is None:
                return {"error": f"unknown item {arguments['item']!r}; items: {', '.join(ITEMS)}"}
            self.known[f"price:{item}"] = str(prices[item])
            return {"item": item, "price": prices[item]}
        try:
            value = format_number(evaluate_arithmetic(arguments["expression"]))
        except ActionError as exc:
            return {"error": str(exc)}
        self.known[f"calc:{arguments['expression']}"] = value
        return {"result": value}

    def state_key(self) -> str | None:
        # Facts learned so far, without how they were phrased: same knowledge, same anchor.
        return "|".join(sorted(set(self.known.values()))) if self.task is not None else None

    def oracle_action(self) -> str:
        data = self.task.data
        missing = [item for item in data["items"] if f"price:{item}" not in self.known]
        if missing:
            return "".join(
                f'<tool_call>{{"name": "lookup", "arguments": {{"item": "{item}"}}}}</tool_call>' for item in missing
            )
        expression = " + ".join(f"{n} * {self.known[f'price:{item}']}" for item, n in zip(data["items"], data["counts"]))
        if f"calc:{expression}" not in self.known:
            return f'<tool_call>{{"name": "calculator", "arguments": {{"expression": "{expression}"}}}}</tool_call>'
        return f"<answer>{self.known[f'calc:{expression}']}</answer>"

    def random_action(self, rng: np.random.Generator) -> str:
        choice = rng.integers(4)
        if choice == 0:
            return f'<tool_call>{{"name": "lookup", "arguments": {{"item": "{rng.choice(ITEMS)}"}}}}</tool_call>'
        if choice == 1:
            return f"<answer>{int(rng.integers(0, 200))}</answer>"
        if choice == 2:
            return '<tool_call>{"name": "calculator", "arguments": {"expr": 1}}</tool_call>'
        return "I think the answer is probably fifty."
