"""The action protocol, observation formatting and HumanEval program assembly (no sandbox needed)."""

import pytest
from agentrl_envs.code_interpreter.actions import parse_action
from agentrl_envs.code_interpreter.humaneval import canonical_submission, grading_program, submission_code
from agentrl_envs.code_interpreter.observation import clip, format_execution, short_traceback
from agentrl_envs.code_interpreter.tasks import exact_value, humaneval_tasks, math_tasks

from agentrl.env.parsing import ActionError


def test_fenced_block_and_python_tool_call_are_code():
    a = parse_action("Let me compute.\n```python\nx = 2 + 3\nprint(x)\n```\n")
    assert (a.kind, a.text, a.via) == ("code", "x = 2 + 3\nprint(x)\n", "block")
    b = parse_action('<tool_call>{"name": "python", "arguments": {"code": "print(1)"}}</tool_call>')
    assert (b.kind, b.text, b.via) == ("code", "print(1)", "tool")


def test_answers_boxed_tag_and_tool():
    assert parse_action("So the result is \\boxed{\\frac{3}{4}}.").text == "\\frac{3}{4}"
    assert parse_action("<answer>\n 42 \n</answer>").text == " 42"  # indentation kept for code bodies
    c = parse_action('<tool_call>{"name": "answer", "arguments": {"answer": "7"}}</tool_call>')
    assert (c.kind, c.text, c.via) == ("answer", "7", "tool")
    code = parse_action("<answer>```python\ndef f():\n    return 1\n```</answer>")
    assert code.kind == "answer" and "def f()" in code.text


def test_first_action_wins():
    # Code first: the guessed answer after it is ignored (generation would have stopped).
    a = parse_action("```python\nprint(6*7)\n```\nThe output will be 42, so \\boxed{42}")
    assert a.kind == "code" and a.text == "print(6*7)\n"
    # Answer first: later code is ignored; only the second block is used of two.
    b = parse_action("\\boxed{5} and then ```python\nprint(1)\n```")
    assert (b.kind, b.text) == ("answer", "5")
    c = parse_action("```python\nprint(1)\n```\n```python\nprint(2)\n```")
    assert c.text == "print(1)\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("I think it is 12.", "No action found"),
        ("```python\nprint(1)", "Code block not recognised"),
        ("```javascript\nconsole.log(1)\n```", "Code block not recognised"),
        ("```python\n\n```", "code block is empty"),
        ("\\boxed{12", "not closed"),
        ("<answer>12", "not closed"),
        ("\\boxed{ }", "empty"),
        ('<tool_call>{"name": "python", "arguments": {"source": "x"}}</tool_call>', "Invalid arguments for python"),
        ('<tool_call>{"name": "shell", "arguments": {}}</tool_call>', "Unknown tool 'shell'"),
        ('<tool_call>{"name": "python", "arguments": {"code": ', "not closed"),
    ],
)
def test_malformed_actions_raise_readable_errors(text, message):
    with pytest.raises(ActionError, match=message):
        parse_action(text)


def test_traceback_is_short_and_ansi_free():
    frames = [
        "\x1b[0;31m---------------------------------------------------------------------------\x1b[0m",
        "\x1b[0;31mZeroDivisionError\x1b[0m                         Traceback (most recent call last)",
        "Cell \x1b[0;32mIn[3], line 1\x1b[0m\n----> 1 f()",
        "Cell In[2], line 2, in f()\n----> 2 return g()",
        "Cell In[2], line 4, in g()\n----> 4 return 1/0",
        "\x1b[0;31mZeroDivisionError\x1b[0m: division by zero",
    ]
    text = short_traceback(frames, "ZeroDivisionError", "division by zero", max_frames=2)
    assert text == (
        "Traceback (most recent call last, 1 frame omitted):\n"
        "Cell In[2], line 2, in f()\n----> 2 return g()\n"
        "Cell In[2], line 4, in g()\n----> 4 return 1/0\n"
        "ZeroDivisionError: division by zero"
    )
    assert short_traceback([], "KeyboardInterrupt", "") == "KeyboardInterrupt"


def test_observation_layout_and_truncation():
    assert format_execution() == "(no output)"
    assert format_execution(stdout="a\n", result="3", display=["image/png"]) == "a\nOut: 3\n[displayed: image/png]"
    long = format_execution(stdout="x" * 5000, budget=240)
    head, marker, tail = long.split("\n")
    # 240 - 40 marker room = 200 characters kept: 100 head + 100 tail, 4800 dropped.
    assert head == "x" * 100 and tail == "x" * 100 and marker == "…(4800 characters truncated)…"
    assert format_execution(stdout="ok", sandbox_truncated=True).endswith("…(output truncated by the sandbox)")
    assert clip("short", 10) == "short"


def test_exact_value_and_math_task_splits_are_content_addressed():
    assert exact_value("-91 / -( -( 52 - 34 ) + -17 )") == pytest.approx(-2.6)
    small = math_tasks(per_family=40)
    large = math_tasks(per_family=80, test_fraction=0.2)
    assert len(small) > 150
    shared = set(small.ids()) & set(large.ids())
    assert len(shared) >= len(small) * 0.9  # same seed: the first 40 items of each family recur
    assert all(small.get(i).split == large.get(i).split for i in shared)
    sizes = large.split_sizes()
    assert 0.1 < sizes["test"] / len(large) < 0.3
    gold = {t.data["family"] for t in small}
    assert gold == {"gsm_symbolic", "basic_arithmetic", "chain_sum", "count_primes", "prime_factorization"}


def test_humaneval_program_accepts_full_function_or_body():
    tasks = humaneval_tasks()
    assert len(tasks) == 164
    data = tasks.get("HumanEval/0").data
    body = data["canonical_solution"]
    full = canonical_submission(data)
    first, rest = grading_program(data, body).split("\n", 1)
    assert first.startswith("_agentrl_done = ") and rest.startswith(data["prompt"] + body)
    program = grading_program(data, full)
    assert "    pass\n" in program and program.endswith("check(has_close_elements)\n_agentrl_done()\n")
    compile(program, "<program>", "exec")
    assert submission_code("```python\ndef f():\n    return 1\n```") == "def f():\n    return 1\n"
    with pytest.raises(ActionError, match="no code"):
        submission_code("```python\n```")


def test_generated_items_are_cached(tmp_path, monkeypatch):
    from agentrl_envs.code_interpreter import tasks

    monkeypatch.setenv("AGENTRL_CACHE", str(tmp_path))
    first = tasks.generate_family("chain_sum", 5, seed=7)
    (cached,) = (tmp_path / "code_interpreter").glob("chain_sum-n5-seed7-rg*.json")
    assert tasks.generate_family("chain_sum", 5, seed=7) == first
    assert cached.read_text().count('"expression"') == 5
    with pytest.raises(ValueError, match="unknown math family"):
        tasks.generate_family("sudoku", 5, seed=7)
