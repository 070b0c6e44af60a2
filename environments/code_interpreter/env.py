r"""The code-interpreter environment: think, run Python, read the output, answer.

State machine (one episode)::

    reset ──► AWAIT_ACTION ──code──► run the cell in this episode's kernel ──► observation ─┐
                   ▲  │                                                                     │
                   │  └──answer──► grade ──► DONE (terminated; reward = correctness)        │
                   └──────────────── unparsable: error observation, valid_action False ◄─────┘
    max_turns / max_invalid_actions ──► DONE (truncated)

* **Actions** — see :mod:`.actions`: a ```` ```python ```` block or a ``python`` tool call runs
  code; ``\boxed{}``, ``<answer>`` or the ``answer`` tool answers. The first action in a
  response wins.
* **Observation** — :mod:`.observation`: stdout/stderr, ``Out:`` value, a short ANSI-free
  traceback, clipped to ``output_budget`` characters with a marker; wrapped in
  ``<interpreter>…</interpreter>`` (code block) or ``<tool_response>…</tool_response>`` (tool call).
* **Sandbox** — one per episode, taken from the process-wide warm pool (:mod:`.pools`) at the
  first code cell (an episode that answers straight away never needs one) and given back (reset
  in the background) when the episode ends, on ``reset`` and on ``aclose``. Its kernel keeps
  variables across the turns of the episode.
* **Reward** — 1 for a correct answer, else 0; ``success`` is the same bit. ``format_penalty``
  (default 0) is subtracted on every invalid action; it never touches ``success``. Tool-cost
  shaping (OTC) is the reward shapers' job: ``info["tool_calls"]`` is 1 for a step that ran code.
* **Failures** — who caused it decides (the rule: :mod:`agentrl.errors`). The agent's doing,
  always an observation, the episode goes on and is scored: code that raises; code that runs
  past ``cell_timeout`` (:class:`SandboxTimeout`: interrupted, the agent is told); code that
  crashes its interpreter (:class:`CodeCrashed`: ``os._exit``, a segfault, a memory bomb,
  ``os.killpg(0, 9)`` — the observation gives the exit code and says the state was lost; a fresh
  kernel runs the next cell) or takes the whole sandbox down with it (``sandbox_lost``: the dead
  sandbox goes back to the pool, which replaces it, and the next cell gets a fresh one). A
  HumanEval submission that takes the grading sandbox down fails its tests. Infrastructure, out
  of ``step``/``astep`` unchanged so the rollout engine masks the episode (never a wrong
  answer): a sandbox that stopped answering or whose engine is gone (:class:`SandboxCrashed`),
  no sandbox at all (:class:`SandboxUnavailable`).
* **state_key** — ``sha256(task id, normalised executed cells)``: two trajectories that ran the
  same code (up to blank lines and trailing spaces) are in the same state for GiGPO. A restart
  after a timeout empties the kernel, and the cell list with it.
* **fork()** — the base class's replay: a new sandbox that re-runs the episode's cells.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import numpy as np
from agentrl_envs.code_interpreter import humaneval
from agentrl_envs.code_interpreter.actions import TOOLS, Action, parse_action
from agentrl_envs.code_interpreter.answers import answers_match
from agentrl_envs.code_interpreter.observation import format_execution, short_traceback
from agentrl_envs.code_interpreter.oracle import answer_cell
from agentrl_envs.code_interpreter.pools import on_pool_loop, shared_pool
from agentrl_envs.code_interpreter.tasks import (
    MATH_FAMILIES,
    humaneval_task_file,
    humaneval_tasks,
    math_task_file,
    math_tasks,
)
from pydantic import Field

from agentrl.env import ActionError, EnvConfig, StepOutcome, Task, TaskSet, TextEnv
from agentrl.sandbox import (
    BackendName,
    CodeCrashed,
    ExecResult,
    SandboxCrashed,
    SandboxPool,
    SandboxTimeout,
    ServerSandbox,
)

MAX_CAPTURE = 64 * 1024  # characters the sandbox sends back per cell; the observation keeps far fewer


class CodeInterpreterConfig(EnvConfig):
    max_turns: int = Field(default=8, ge=1)
    backend: BackendName = Field(default="local", description="Sandbox backend name (agentrl.sandbox.backend_names()).")
    sandbox_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Limits fields (memory_mb, pids, cpu_time_s, …) or backend options (image=…) for the sandboxes.",
    )
    pool_size: int = Field(default=2, ge=0, description="Warm idle sandboxes kept by the shared pool.")
    pool_max: int = Field(default=64, ge=1, description="Cap on live sandboxes in the shared pool.")
    acquire_timeout: float = Field(default=300.0, gt=0, description="Seconds to wait for a free sandbox.")
    cell_timeout: float = Field(default=10.0, gt=0, description="Seconds a cell may run before it is interrupted.")
    output_budget: int = Field(default=2000, ge=100, description="Characters of output shown per cell.")
    format_penalty: float = Field(default=0.0, ge=0.0, description="Subtracted from the reward of an invalid action.")
    test_fraction: float = Field(default=0.2, ge=0.0, le=1.0)
    tasks: str | None = Field(
        default=None, description="JSONL file of your own problems (README: 'Your own tasks'); replaces the bundled ones."
    )


def normalise_cell(code: str) -> str:
    """Code without blank lines or trailing whitespace (the state_key's view of a cell)."""
    return "\n".join(line.rstrip() for line in code.strip().splitlines() if line.strip())


def execution_text(result: ExecResult, budget: int, show_error: bool = True) -> str:
    """The observation body for one executed cell."""
    error = None
    if result.error is not None and show_error:
        error = short_traceback(result.error.traceback, result.error.name, result.error.value)
    return format_execution(
        stdout=result.stdout,
        stderr=result.stderr,
        result=result.result,
        display=[d.mime for d in result.display],
        error=error,
        sandbox_truncated=result.truncated,
        budget=budget,
    )


def wrap(text: str, via: str) -> str:
    tag = "tool_response" if via == "tool" else "interpreter"
    return f"<{tag}>\n{text}\n</{tag}>"


class CodeInterpreterEnv(TextEnv):
    """Shared loop of the code-interpreter envs; subclasses define tasks, prompts and grading."""

    __abstract_env__ = True
    Config = CodeInterpreterConfig
    config: CodeInterpreterConfig
    tools = TOOLS

    def __init__(self, render_mode: str | None = None, **options: Any):
        super().__init__(render_mode=render_mode, **options)
        self._pool: SandboxPool | None = None
        self._sandbox: ServerSandbox | None = None
        self._cells: list[str] = []
        self.last_stdout = ""
        if self.config.tasks is not None:
            self._tasks = self.build_tasks()  # read and check the file now: a bad one fails make()

    # ------------------------------------------------------------- subclass hooks
    def task_prompt(self, task: Task) -> str:
        raise NotImplementedError

    async def grade(self, answer: str) -> StepOutcome:
        """Score a final answer (terminal). Raise ActionError for an answer that is not one."""
        raise NotImplementedError

    # ------------------------------------------------------------- sandbox plumbing
    async def pool(self) -> SandboxPool:
        if self._pool is None:
            c = self.config
            self._pool = await shared_pool(c.backend, c.pool_size, c.pool_max, **c.sandbox_options)
        return self._pool

    async def _ensure_sandbox(self) -> ServerSandbox:
        if self._sandbox is None:
            pool = await self.pool()
            self._sandbox = await on_pool_loop(pool.acquire(self.config.acquire_timeout))
        return self._sandbox

    async def _release(self) -> None:
        sandbox, self._sandbox = self._sandbox, None
        if sandbox is not None:
            await on_pool_loop(self._pool.release(sandbox))

    async def run_cell(self, code: str) -> tuple[str, dict[str, Any]]:
        """Run ``code`` in this episode's kernel; return the observation body and exec info."""
        sandbox = await self._ensure_sandbox()
        try:
            result = await on_pool_loop(
                sandbox.run_code(code, timeout=self.config.cell_timeout, max_output=MAX_CAPTURE)
            )
        except SandboxTimeout as exc:
            if not exc.state_kept:
                self._cells = []
            # What the cell printed before the interrupt; its KeyboardInterrupt traceback is noise.
            partial = execution_text(exc.result, self.config.output_budget, show_error=False) if exc.result else ""
            kept = (
                "Variables from earlier cells are kept."
                if exc.state_kept
                else "The kernel had to be restarted: all variables and imports are lost."
            )
            note = f"TimeoutError: the cell ran longer than {self.config.cell_timeout:g} s and was interrupted. {kept}"
            body = note if partial in ("", "(no output)") else f"{partial}\n{note}"
            return body, {"outcome": "timeout", "state_kept": exc.state_kept}
        except CodeCrashed as exc:  # the agent's code ended its interpreter: its doing, scored
            self._cells = []
            if exc.sandbox_lost:
                await self._release()  # dead: the pool replaces it; the next cell gets a fresh one
            partial = execution_text(exc.result, self.config.output_budget, show_error=False) if exc.result else ""
            what = "the whole sandbox" if exc.sandbox_lost else "the Python interpreter"
            note = (
                f"KernelCrashed: your code crashed {what} ({exc.how()}); all variables and imports are "
                "lost. A fresh interpreter runs your next cell."
            )
            body = note if partial in ("", "(no output)") else f"{partial}\n{note}"
            return body, {"outcome": "crashed", "exit_code": exc.exit_code, "sandbox_lost": exc.sandbox_lost}
        except SandboxCrashed:
            await self._release()  # the pool replaces it; the episode is lost (infra)
            raise
        self._cells.append(normalise_cell(code))
        self.last_stdout = result.stdout
        return execution_text(result, self.config.output_budget), {
            "outcome": result.outcome,
            "duration": result.duration,
        }

    # ------------------------------------------------------------- TextEnv hooks
    async def _areset(self, task: Task) -> str:
        await self._release()
        self._cells = []
        self.last_stdout = ""
        return self.task_prompt(task)

    async def _astep(self, action: str) -> StepOutcome:
        try:
            parsed = parse_action(action, self.tools)
            if parsed.kind == "code":
                return await self._execute(parsed)
            outcome = await self.grade(parsed.text)
        except ActionError as exc:
            message = str(exc)
            return StepOutcome(
                f"Error: {message}", reward=-self.config.format_penalty, valid_action=False, error=message
            )
        await self._release()
        return outcome

    async def _execute(self, action: Action) -> StepOutcome:
        body, info = await self.run_cell(action.text)
        return StepOutcome(wrap(body, action.via), tool_calls=1, info={"execution": info})

    async def aclose(self) -> None:
        await self._release()

    def state_key(self) -> str | None:
        if self.task is None:
            return None
        digest = hashlib.sha256(self.task.id.encode())
        for cell in self._cells:
            digest.update(b"\x00" + cell.encode())
        return digest.hexdigest()[:16]

    @property
    def cells(self) -> list[str]:
        """The normalised cells run so far in this episode's kernel."""
        return list(self._cells)

    def random_action(self, rng: np.random.Generator) -> str:
        """A malformed or useless action: prose, broken fences or tool calls, failing code, a guess."""
        choices = [
            "I am not sure how to solve this; let me think more.",
            "```python\nprint('unclosed block')",
            "```javascript\nconsole.log(1)\n```",
            '<tool_call>{"name": "python", "arguments": {"source": "print(1)"}}</tool_call>',
            '<tool_call>{"name": "shell", "arguments": {"cmd": "ls"}}</tool_call>',
            "```python\nresult = undefined_variable + 1\n```",
            "\\boxed{",
            self.random_guess(rng),
        ]
        return choices[int(rng.integers(len(choices)))]

    def random_guess(self, rng: np.random.Generator) -> str:
        return f"\\boxed{{{int(rng.integers(-1000, 1000))}}}"


class CodeMathEnv(CodeInterpreterEnv):
    """Math word problems and number theory from reasoning-gym, answered with ``\\boxed{}``."""

    class Config(CodeInterpreterConfig):
        families: list[str] = Field(default_factory=lambda: list(MATH_FAMILIES), min_length=1)
        per_family: int = Field(default=500, ge=1, description="Generated items per family.")
        seed: int = Field(default=2024, description="reasoning-gym generator seed (not the split: splits hash content).")

    instructions = (
        "Solve the problem. You can run Python: write code in a ```python ... ``` block (or call the python "
        "tool) and you will see its output; variables persist between your code blocks. Use print() to see "
        "values. When you know the answer, reply with it in \\boxed{...} (or call the answer tool)."
    )

    def build_tasks(self) -> TaskSet:
        c = self.config
        if c.tasks is not None:
            return math_task_file(c.tasks, c.test_fraction)
        return math_tasks(tuple(c.families), c.per_family, c.seed, c.test_fraction)

    def task_prompt(self, task: Task) -> str:
        return task.data["question"]

    async def grade(self, answer: str) -> StepOutcome:
        gold = self.task.data["answer"]
        correct = answers_match(answer, gold, self.task.data["kind"])
        return StepOutcome(
            "Correct." if correct else "Incorrect.",
            reward=float(correct),
            terminated=True,
            success=correct,
            info={"answer": answer, "expected": gold},
        )

    def oracle_action(self) -> str:
        """Compute ``answer`` in one cell, print it from a second (kernel state), box the print."""
        if "code" in self.task.data and self.task.data["code"] is None:
            raise NotImplementedError(f"task {self.task.id!r} has no oracle: its tasks-file line gives no 'code'")
        if not self._cells:
            return f"```python\n{answer_cell(self.task.data)}\n```"
        if len(self._cells) == 1:
            return "```python\nprint(answer)\n```"
        return f"\\boxed{{{self.last_stdout.strip()}}}"


class HumanEvalEnv(CodeInterpreterEnv):
    """HumanEval's 164 problems: write the function, test it in the kernel, submit it."""

    class Config(CodeInterpreterConfig):
        test_fraction: float = Field(default=0.5, ge=0.0, le=1.0)
        grade_timeout: float = Field(default=10.0, gt=0, description="Seconds for the hidden tests to run.")

    instructions = (
        "Complete the Python function. You can run code: write it in a ```python ... ``` block (or call the "
        "python tool) to try your function on examples; variables persist between your code blocks. When you "
        "are done, submit the complete function (with its imports) as <answer>```python ...```</answer> (or "
        "call the answer tool with the code). Hidden tests then decide whether it is correct."
    )

    def build_tasks(self) -> TaskSet:
        c = self.config
        if c.tasks is not None:
            return humaneval_task_file(c.tasks, c.test_fraction)
        return humaneval_tasks(c.test_fraction)

    def task_prompt(self, task: Task) -> str:
        return f"```python\n{task.data['prompt']}```"

    async def grade(self, answer: str) -> StepOutcome:
        """Run the hidden tests in a *fresh* sandbox's isolated interpreter (see :mod:`.humaneval`)."""
        program = humaneval.grading_program(self.task.data, humaneval.submission_code(answer))
        token = secrets.token_hex(16)
        await self._release()  # grade where the agent's code never ran
        pool = await self.pool()
        try:
            result = await on_pool_loop(
                run_program(pool, program, self.config.grade_timeout, self.config.acquire_timeout, stdin=token)
            )
        except CodeCrashed:  # the submission took the grading sandbox down: it fails
            result = None
        exited_ok = result is not None and result.returncode == 0 and not result.timed_out
        passed = exited_ok and humaneval.completed(result.stdout, token)
        if passed:
            verdict = "passed"
        elif result is None:
            verdict = "failed: the submission crashed the grading sandbox"
        elif exited_ok:
            verdict = "failed: the program ended before the tests finished"
        elif result.timed_out:
            verdict = f"timed out after {self.config.grade_timeout:g} s"
        else:
            lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
            verdict = f"failed: {lines[-1] if lines else f'exit status {result.returncode}'}"
        return StepOutcome(
            "All hidden tests passed." if passed else f"Hidden tests {verdict}.",
            reward=float(passed),
            terminated=True,
            success=passed,
            info={"tests": verdict},
        )

    def oracle_action(self) -> str:
        """Define the canonical solution in the kernel, then submit it."""
        if self.task.data["canonical_solution"] is None:
            raise NotImplementedError(
                f"task {self.task.id!r} has no oracle: its tasks-file line gives no 'canonical_solution'"
            )
        solution = humaneval.canonical_submission(self.task.data)
        if not self._cells:
            return f"```python\n{solution}\nprint({self.task.data['entry_point']}.__name__, 'defined')\n```"
        return f"<answer>```python\n{solution}```</answer>"

    def random_guess(self, rng: np.random.Generator) -> str:
        entry = self.task.data["entry_point"] if self.task else "f"
        return f"<answer>```python\ndef {entry}(*args):\n    return None\n```</answer>"


_interpreters: dict[int, str] = {}


async def run_program(
    pool: SandboxPool, program: str, timeout: float, acquire_timeout: float, stdin: str | None = None
):
    """Run ``program`` with ``python -I -c`` in a freshly reset sandbox of ``pool`` (on its loop).

    The interpreter path is asked from the sandbox's kernel once per pool (before any untrusted
    code ran there), so it is right for every backend and image.
    """
    async with pool.sandbox(acquire_timeout) as sandbox:
        python = _interpreters.get(id(pool))
        if python is None:
            probe = await sandbox.run_code("import sys; print(sys.executable, end='')", timeout=30)
            python = _interpreters[id(pool)] = probe.stdout
        return await sandbox.exec([python, "-I", "-c", program], timeout=timeout, stdin=stdin)
