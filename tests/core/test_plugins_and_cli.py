"""Plug-in discovery through a really installed distribution, and the CLI as a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AGENTRL = [sys.executable, "-m", "agentrl.cli"]


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    """pip-install examples/custom_env into a private target dir (real dist-info + entry points)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target),
         str(ROOT / "examples" / "custom_env")],
        check=True,
    )
    assert list(target.glob("countdown_env-*.dist-info")) or list(target.glob("countdown_env*.dist-info"))
    return target


def run_cli(*args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([*AGENTRL, *args], capture_output=True, text=True, env=env, timeout=120, check=False)


def test_plugin_is_discovered_through_its_entry_point(installed_plugin):
    code = (
        "import agentrl, asyncio\n"
        "from agentrl.env import aplay_episode, make_agent\n"
        "env = agentrl.make('countdown/Countdown-v0')\n"
        "print(type(env).__module__)\n"
        "wins = [asyncio.run(aplay_episode(env, make_agent('oracle', env), task_id=t.id)).success for t in env.tasks]\n"
        "print(sum(wins), len(wins))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(installed_plugin)},
    ).stdout.split()
    assert out[0] == "countdown_env"
    assert out[1] == out[2]  # the example's oracle solves all its tasks

    listing = run_cli("envs", "list", env_extra={"PYTHONPATH": str(installed_plugin), "COLUMNS": "200"})
    assert "countdown/Countdown-v0" in listing.stdout and "agentrl/Maze-v0" in listing.stdout


def test_cli_run_end_to_end(tmp_path):
    out = tmp_path / "t.jsonl"
    result = run_cli("run", "--env", "agentrl/Maze-v0", "--agent", "oracle", "-n", "5", "--output", str(out),
                     env_extra={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "success rate" in result.stdout and "1.000" in result.stdout
    lines = out.read_text().splitlines()
    assert len(lines) == 5 and all(json.loads(line)["success"] for line in lines)


def test_cli_show_and_errors():
    shown = run_cli("envs", "show", "agentrl/Calculator-v0", env_extra={"COLUMNS": "200"})
    assert shown.returncode == 0 and "lookup" in shown.stdout and "success=True" in shown.stdout
    bad = run_cli("run", "--env", "agentrl/Maze-v9")
    assert bad.returncode != 0 and "Did you mean: agentrl/Maze-v0" in bad.stderr
    bad_option = run_cli("run", "--env", "agentrl/Maze-v0", "-e", "size=99")
    assert bad_option.returncode != 0 and "size: Input should be less than or equal to 15" in bad_option.stderr

    unwritable = run_cli("run", "--env", "agentrl/Maze-v0", "-o", f"{__file__}/x.jsonl")
    assert unwritable.returncode == 1 and "Error: cannot write to the output folder" in unwritable.stderr
    no_dev = run_cli("run", "--env", "agentrl/Maze-v0", "--split", "dev")
    assert no_dev.returncode == 1 and "Traceback" not in no_dev.stderr
    assert "agentrl/Maze-v0 has no tasks in split 'dev'" in no_dev.stderr


def test_the_random_agent_is_not_a_function_of_the_task():
    """`agentrl run` draws each episode's task from its seed; the random agent seeded from the same
    stream picked the wrong door in every room of the contextual bandit (success 0.000, not ~0.5)."""
    result = run_cli("run", "--env", "agentrl/ContextualBandit-v0", "--agent", "random", "-n", "200",
                     env_extra={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    rate = float(next(line for line in result.stdout.splitlines() if "success rate" in line).split("│")[2])
    assert 0.4 <= rate <= 0.6  # 1/2 doors pays; 200 episodes: SE 0.035, so this is 2.8 SE either side


def test_a_remote_env_option_is_refused_with_the_reason():
    """The commands walk the env's task list, which a remote env keeps on its server: -e remote=URL
    is one line saying so (it was a traceback, or an error about a 'split' option nobody passed)."""
    url = "ws://127.0.0.1:9"
    expected = ("Error: -e remote=...: this command walks the env's task list, which a remote env keeps on its "
                "server; run it where the env is served, or play remote episodes from Python with "
                "agentrl.make(ID, remote=URL)")
    for args in (("envs", "show", "agentrl/Calculator-v0"), ("run", "--env", "agentrl/Calculator-v0"),
                 ("eval", "run", "--env", "agentrl/Calculator-v0", "-o", "/nonexistent/never-made")):
        result = run_cli(*args, "-e", f"remote={url}")
        assert result.returncode == 1 and result.stderr.strip() == expected, (args, result.stderr)


def test_envs_list_is_not_cut_when_piped():
    listing = run_cli("envs", "list", env_extra={"COLUMNS": "40"})
    lines = dict(line.split("\t") for line in listing.stdout.splitlines() if "\t" in line)
    assert lines["agentrl/Calculator-v0"] == "agentrl_envs.toy.calculator:CalculatorEnv"
    assert "…" not in listing.stdout


def test_help_does_not_import_the_heavy_libraries():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from agentrl.cli import main\n"
        "assert CliRunner().invoke(main, ['--help']).exit_code == 0\n"
        "print(sorted(m for m in ('matplotlib', 'torch', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_module_imports_the_top_level_cli():
    """agentrl/cli.py assembles the commands; nothing it imports may import it back (no cycle)."""
    import ast

    offenders = []
    for path in (ROOT / "agentrl").rglob("*.py"):
        if path.name == "__main__.py":  # `python -m agentrl` runs the command line: the one importer
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if "agentrl.cli" in names:
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
