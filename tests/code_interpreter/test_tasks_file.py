"""``tasks=PATH``: your own CodeMath problems and HumanEval-format problems from a JSONL file."""

import json

import pytest
from agentrl_envs.code_interpreter import CodeMathEnv, HumanEvalEnv

import agentrl
from agentrl.env import EnvOptionError, OracleAgent, aplay_episode

MATH = [
    {"question": "What is 6 * 7?", "answer": "42", "code": "answer = 6 * 7", "id": "mul"},
    {
        "question": "What is 1/4 + 1/2?",
        "answer": 0.75,
        "code": "from fractions import Fraction\nanswer = Fraction(3, 4)",
    },
    {
        "question": "Factor 60.",
        "answer": "2^2 × 3 × 5",
        "kind": "factors",
        "code": "answer = '2 * 2 * 3 * 5'",
    },
    {"question": "How many primes are below 20?", "answer": "8", "family": "primes", "split": "test"},
]

ADD = {
    "task_id": "mine/add",
    "prompt": 'def add(a: int, b: int) -> int:\n    """The sum of a and b."""\n',
    "entry_point": "add",
    "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
    "canonical_solution": "    return a + b\n",
}
# A helper in the prompt and an import the solution needs (the stub brings both).
EVENS = {
    "task_id": "mine/evens",
    "prompt": (
        "import math\n\n\ndef is_even(n):\n    return n % 2 == 0\n\n\n"
        'def count_evens(xs: list) -> int:\n    """How many items of xs are even."""\n'
    ),
    "entry_point": "count_evens",
    "test": "def check(candidate):\n    assert candidate([1, 2, 4]) == 2\n    assert candidate([]) == 0\n",
    "canonical_solution": "    return sum(1 for x in xs if is_even(x)) + 0 * math.floor(0)\n",
    "split": "test",
}
NO_SOLUTION = {key: ADD[key] for key in ("prompt", "entry_point", "test")} | {"task_id": "mine/bare"}


def write(tmp_path, lines, name="tasks.jsonl"):
    path = tmp_path / name
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return str(path)


def math_env(path, **options):
    return agentrl.make("agentrl/CodeMath-v0", backend="local", tasks=path, **options)


def humaneval_env(path, **options):
    return agentrl.make("agentrl/HumanEval-v0", backend="local", tasks=path, **options)


# ---------------------------------------------------------------------- good files
async def test_math_file_tasks_ids_splits_and_oracle(tmp_path):
    path = write(tmp_path, [MATH[0], "", *MATH[1:]])  # a blank line 2 still counts
    env = math_env(path)
    try:
        assert env.tasks.ids() == ["mul", "tasks/3", "tasks/4", "tasks/5"]
        assert env.tasks.split("test").ids()[-1] == "tasks/5"
        assert env.tasks.get("tasks/3").data == {
            "family": "custom",
            "question": MATH[1]["question"],
            "answer": "0.75",
            "kind": "number",
            "code": MATH[1]["code"],
        }
        assert env.tasks.get("tasks/5").data["family"] == "primes"
        for task_id in ("mul", "tasks/3", "tasks/4"):
            trajectory = await aplay_episode(env, OracleAgent(env), seed=0, task_id=task_id)
            assert trajectory.success and trajectory.final_reward == 1.0, [
                s.observation for s in trajectory.steps
            ]
            # compute, print from kernel state (3/4 prints as "3/4"; "2 * 2 * 3 * 5" for the factors), answer
            assert [s.tool_calls for s in trajectory.steps] == [1, 1, 0]
        assert (await env.areset(options={"task_id": "mul"}))[0] == "What is 6 * 7?"
        _obs, reward, terminated, _trunc, info = await env.astep("\\boxed{41}")
        assert (reward, terminated, info["success"]) == (0.0, True, False)
        await env.areset(options={"task_id": "tasks/4"})
        _obs, reward, *_ = await env.astep("\\boxed{5 × 3 × 2 × 2}")  # factors compare as multisets
        assert reward == 1.0
        await env.areset(options={"task_id": "tasks/4"})
        _obs, reward, *_ = await env.astep("\\boxed{2 × 3 × 5}")
        assert reward == 0.0
        await env.areset(options={"task_id": "tasks/5"})
        with pytest.raises(NotImplementedError, match=r"task 'tasks/5' has no oracle: .* no 'code'"):
            env.oracle_action()
    finally:
        await env.aclose()


async def test_humaneval_file_oracle_passes_and_wrong_code_fails(tmp_path):
    env = humaneval_env(write(tmp_path, [ADD, EVENS, NO_SOLUTION]))
    try:
        assert env.tasks.ids() == ["mine/add", "mine/evens", "mine/bare"]
        assert env.tasks.get("mine/evens").split == "test"
        for task_id in ("mine/add", "mine/evens"):
            trajectory = await aplay_episode(env, OracleAgent(env), seed=0, task_id=task_id)
            assert trajectory.success and trajectory.final_reward == 1.0, [
                s.observation for s in trajectory.steps
            ]
        # A task without canonical_solution is still playable and graded; only the oracle is missing.
        obs, _info = await env.areset(options={"task_id": "mine/bare"})
        assert obs == f"```python\n{ADD['prompt']}```"
        with pytest.raises(
            NotImplementedError, match=r"task 'mine/bare' has no oracle: .* 'canonical_solution'"
        ):
            env.oracle_action()
        obs, reward, terminated, _trunc, _info = await env.astep(
            "<answer>```python\ndef add(a, b):\n    return a - b\n```</answer>"
        )
        assert (reward, terminated) == (0.0, True) and obs.startswith("Hidden tests failed: ")
        await env.areset(options={"task_id": "mine/bare"})
        obs, reward, *_ = await env.astep("<answer>```python\n    return b + a\n```</answer>")  # body only
        assert (obs, reward) == ("All hidden tests passed.", 1.0)
    finally:
        await env.aclose()


@pytest.mark.parametrize("env_id", ["agentrl/CodeMath-v0", "agentrl/HumanEval-v0"])
async def test_the_agents_kernel_cannot_read_the_tasks_file(tmp_path, env_id):
    """Gold answers and hidden tests stay on the host: the file is not in the sandbox's filesystem."""
    secret = "gold-7f3a9c"  # the probe builds it from two halves, so its own source never holds it
    if env_id == "agentrl/CodeMath-v0":
        line = {"question": "What is 2 + 2?", "answer": "4", "id": secret}
        line["code"] = f"answer = 4  # {secret}"
    else:
        line = ADD | {"test": ADD["test"] + f"    assert '{secret}'\n"}
    path = write(tmp_path, [line])
    env = agentrl.make(env_id, backend="local", tasks=path)
    probe = (
        "import os\n"
        "open('/tmp/mine.txt', 'w').write('readable')\n"
        "print('own file:', open('/tmp/mine.txt').read())\n"  # open() works in the kernel
        f"try:\n    print('tasks file:', open({path!r}).read())\n"
        "except OSError as exc:\n    print('tasks file:', type(exc).__name__)\n"
        "hits = []\n"
        "for top in ('/tmp', '/work', os.path.expanduser('~')):\n"
        "    for folder, _dirs, files in os.walk(top):\n"
        "        for name in files:\n"
        "            try:\n"
        f"                if ({secret[:5]!r} + {secret[5:]!r}).encode() in open(os.path.join(folder, name), 'rb').read():\n"
        "                    hits.append(os.path.join(folder, name))\n"
        "            except OSError:\n"
        "                pass\n"
        "print('hits:', hits)\n"
    )
    try:
        obs, _info = await env.areset(options={"task_id": env.tasks[0].id})
        assert secret not in obs
        obs, *_ = await env.astep(f"```python\n{probe}```")
        assert (
            obs
            == "<interpreter>\nown file: readable\ntasks file: FileNotFoundError\nhits: []\n</interpreter>"
        )
    finally:
        await env.aclose()


# ---------------------------------------------------------------------- bad files
GOOD_MATH = {"question": "q", "answer": "1"}

BAD_MATH = [
    ({"answer": "1"}, "field 'question': Field required"),
    ({"question": "   ", "answer": "1"}, "field 'question': String should have at least 1 character"),
    ({"question": "q"}, "field 'answer': Field required"),
    (
        {"question": "q", "answer": "forty-two"},
        "field 'answer': 'forty-two' is not a number answer (e.g. 42, -2.5, 3/4)",
    ),
    (
        {"question": "q", "answer": "2 x y", "kind": "factors"},
        "field 'answer': '2 x y' is not a factors answer",
    ),
    ({"question": "q", "answer": True}, "field 'answer': Input should be a valid string"),
    ({"question": "q", "answer": [1]}, "field 'answer': Input should be a valid string"),
    ({"question": "q", "answer": "1", "kind": "text"}, "field 'kind': Input should be 'number' or 'factors'"),
    (
        {"question": "q", "answer": "1", "split": "val"},
        "field 'split': Input should be 'train', 'dev' or 'test'",
    ),
    ({"question": "q", "answer": "1", "code": ""}, "field 'code': String should have at least 1 character"),
    ({"question": "q", "answer": "1", "answers": ["1"]}, "field 'answers': Extra inputs are not permitted"),
    ({"question": "q", "answer": "1", "id": "tasks/1"}, "field 'id': task 'tasks/1' is listed twice"),
]

GOOD_HE = ADD | {"task_id": "first"}

BAD_HUMANEVAL = [
    ({k: v for k, v in ADD.items() if k != "test"}, "field 'test': Field required"),
    (ADD | {"entry_point": "add two"}, "field 'entry_point': 'add two' is not a Python function name"),
    (ADD | {"entry_point": "class"}, "field 'entry_point': 'class' is not a Python function name"),
    (ADD | {"prompt": "def add(a, b:\n"}, "field 'prompt': not valid Python ("),
    (ADD | {"prompt": "x = 1\n"}, "field 'prompt': not valid Python (unexpected indent, line 2)"),
    (ADD | {"prompt": "def plus(a, b):\n"}, "field 'prompt': defines no top-level function add()"),
    (ADD | {"prompt": 7}, "field 'prompt': Input should be a valid string"),
    (ADD | {"test": "assert add(1, 1) == 2\n"}, "field 'test': defines no top-level function check()"),
    (
        ADD | {"test": "def check(candidate)\n    pass\n"},
        "field 'test': not valid Python (expected ':', line 1)",
    ),
    (
        ADD | {"canonical_solution": "    return a +\n"},
        "field 'canonical_solution': not valid Python (invalid syntax, line 3)",
    ),
    (ADD | {"task_id": "first"}, "field 'task_id': task 'first' is listed twice"),
    (ADD | {"plus_input": [[1, 2]]}, "field 'plus_input': Extra inputs are not permitted"),
]


@pytest.mark.parametrize(
    ("env_id", "good", "bad", "message"),
    [("agentrl/CodeMath-v0", GOOD_MATH, *case) for case in BAD_MATH]
    + [("agentrl/HumanEval-v0", GOOD_HE, *case) for case in BAD_HUMANEVAL],
)
def test_bad_line_names_file_line_and_field(tmp_path, env_id, good, bad, message):
    path = write(tmp_path, [good, "", bad])
    with pytest.raises(EnvOptionError) as caught:
        agentrl.make(env_id, tasks=path)
    text = str(caught.value)
    assert text.startswith(f"tasks file {path}, line 3: {message}"), text
    assert "\n" not in text


@pytest.mark.parametrize("env_cls", [CodeMathEnv, HumanEvalEnv])
def test_empty_missing_and_non_json_files(tmp_path, env_cls):
    empty = write(tmp_path, ["", "  "], name="empty.jsonl")
    with pytest.raises(
        EnvOptionError, match=r"^tasks file .*empty\.jsonl: empty \(one JSON object per line\)$"
    ):
        env_cls(tasks=empty)
    missing = str(tmp_path / "missing.jsonl")
    with pytest.raises(EnvOptionError, match=rf"^tasks: cannot read {missing}: No such file or directory$"):
        env_cls(tasks=missing)
    broken = write(tmp_path, ['{"question": "q",'], name="broken.jsonl")
    with pytest.raises(EnvOptionError, match=r"broken\.jsonl, line 1: not valid JSON \("):
        env_cls(tasks=broken)
    listed = write(tmp_path, ["[1, 2]"], name="list.jsonl")
    with pytest.raises(EnvOptionError, match=r"list\.jsonl, line 1: expected a JSON object, got list$"):
        env_cls(tasks=listed)
