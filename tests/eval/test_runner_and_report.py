import asyncio
import re
import shutil
import subprocess
import sys

import pytest

import agentrl
from agentrl import __version__
from agentrl.errors import InfraError
from agentrl.eval.metrics import report_ks
from agentrl.eval.report import describe_run, render_report
from agentrl.eval.runner import (
    EPISODES_FILE,
    AgentSpec,
    EvalSettings,
    evaluate,
    load_finished,
    run_info,
    scripted_episode_fn,
)
from agentrl.types import Trajectory


def counting(fn, calls):
    async def play(task_id, seed):
        calls.append((task_id, seed))
        return await fn(task_id, seed)

    return play


def test_interrupted_run_resumes_without_redoing_episodes(tmp_path):
    settings = EvalSettings(env_id="agentrl/Calculator-v0", agent=AgentSpec(kind="oracle"), samples_per_task=2, max_tasks=6)
    first_calls = []
    full = asyncio.run(evaluate(settings, counting(scripted_episode_fn(settings), first_calls), tmp_path, 3, False))
    assert len(full) == len(first_calls) == 12 and all(t.success for t in full)

    # Simulate a crash: keep 7 finished episodes, then one infra failure that must be retried.
    path = tmp_path / EPISODES_FILE
    lines = path.read_text().splitlines()[:7]
    failed = Trajectory.model_validate_json(path.read_text().splitlines()[7])
    failed.status, failed.error = "infra_error", "SandboxCrashed: kernel died"
    path.write_text("\n".join(lines + [failed.model_dump_json()]) + "\n")

    calls = []
    resumed = asyncio.run(evaluate(settings, counting(scripted_episode_fn(settings), calls), tmp_path, 3, False))
    assert len(calls) == 5  # 12 - 7 finished; the infra failure is run again
    assert len(resumed) == 12 and len(load_finished(tmp_path)) == 12
    assert {(t.task_id, t.info["sample"]) for t in resumed} == {(t.task_id, t.info["sample"]) for t in full}
    assert all(t.status == "ok" for t in load_finished(tmp_path))


def test_resume_with_other_settings_is_refused(tmp_path):
    settings = EvalSettings(env_id="agentrl/Maze-v0", agent=AgentSpec(kind="oracle"), max_tasks=2)
    asyncio.run(evaluate(settings, scripted_episode_fn(settings), tmp_path, 1, False))
    changed = settings.model_copy(update={"samples_per_task": 3})
    with pytest.raises(ValueError, match="other settings.*samples_per_task"):
        asyncio.run(evaluate(changed, scripted_episode_fn(changed), tmp_path))


def test_an_infra_failure_is_recorded_and_the_run_goes_on(tmp_path):
    settings = EvalSettings(env_id="agentrl/Maze-v0", agent=AgentSpec(kind="oracle"), max_tasks=10)

    async def flaky(task_id, seed):
        if task_id.endswith(("1", "3", "5", "7", "9")):
            raise InfraError("backend went away")
        return await scripted_episode_fn(settings)(task_id, seed)

    results = asyncio.run(evaluate(settings, flaky, tmp_path, 4, False))
    bad = [t for t in results if t.status == "infra_error"]
    odd = [t.task_id for t in results if t.task_id.endswith(("1", "3", "5", "7", "9"))]
    assert odd and sorted(t.task_id for t in bad) == sorted(odd)
    assert all(t.error == "InfraError: backend went away" for t in bad)
    assert len(results) == 10 and all(t.success for t in results if t.status != "infra_error")


@pytest.mark.parametrize("error", [ConnectionError("a bare OSError is not infra"), KeyError("a bug")])
def test_an_error_that_is_not_infra_fails_the_run_and_keeps_what_finished(tmp_path, error):
    settings = EvalSettings(env_id="agentrl/Maze-v0", agent=AgentSpec(kind="oracle"), max_tasks=4)

    async def buggy(task_id, seed):
        if task_id == tasks[-1]:
            raise error
        return await scripted_episode_fn(settings)(task_id, seed)

    tasks = agentrl.make("agentrl/Maze-v0").tasks.split("test").ids()[:4]
    with pytest.raises(type(error)):
        asyncio.run(evaluate(settings, buggy, tmp_path, 1, False))
    finished = load_finished(tmp_path)
    assert [t.task_id for t in finished] == tasks[:-1] and all(t.status == "ok" for t in finished)


def test_cli_eval_run_compare_and_bad_env(tmp_path):
    cli = [sys.executable, "-m", "agentrl.cli", "eval"]
    for agent in ("oracle", "random"):
        out = subprocess.run([*cli, "run", "--env", "agentrl/Maze-v0", "--agent", agent, "--max-tasks", "8", "-k", "2",
                              "-o", str(tmp_path / agent)], capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 0, out.stderr
        assert (tmp_path / agent / "report.html").exists()
    (tmp_path / "oracle" / "report.html").unlink()
    rewritten = subprocess.run([*cli, "report", str(tmp_path / "oracle")], capture_output=True, text=True, timeout=120, check=False)
    assert rewritten.returncode == 0 and (tmp_path / "oracle" / "report.html").exists()
    cmp = subprocess.run([*cli, "compare", str(tmp_path / "oracle"), str(tmp_path / "random"), "-o",
                          str(tmp_path / "cmp.html")], capture_output=True, text=True, timeout=120, check=False)
    assert cmp.returncode == 0, cmp.stderr
    page = (tmp_path / "cmp.html").read_text()
    assert "oracle @ oracle" in page and "random @ random" in page
    bad = subprocess.run([*cli, "run", "--env", "agentrl/Mazee-v0", "-O", str(tmp_path / "x")], capture_output=True, text=True, check=False)
    assert bad.returncode != 0 and "Did you mean: agentrl/Maze-v0" in bad.stderr


@pytest.mark.browser
def test_report_renders_in_headless_chromium(tmp_path):
    """The page loads without console errors and every plot decodes to a real image."""
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.skip("Debian chromium + chromium-driver are not installed (scripts/chromium_setup.sh)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    settings = EvalSettings(env_id="agentrl/Calculator-v0", agent=AgentSpec(kind="random"), samples_per_task=3, max_tasks=10)
    runs = asyncio.run(evaluate(settings, scripted_episode_fn(settings), tmp_path / "run", 4, False))
    page = tmp_path / "report.html"
    page.write_text(render_report({"random": runs}, "random on calculator"))

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                 "--window-size=1200,1600"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        browser.get(page.as_uri())
        assert browser.title == "random on calculator"
        sizes = browser.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
        )
        assert len(sizes) == 3 and all(done and w > 200 and h > 100 for done, w, h in sizes)
        assert browser.find_element("id", "summary").text.count("pass@") == 1
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
        shot = tmp_path / "report.png"
        browser.save_screenshot(str(shot))
    finally:
        browser.quit()
    from PIL import Image

    image = Image.open(shot).convert("L")
    colours = image.getcolors(maxcolors=1_000_000)
    assert image.size[0] >= 1000 and len(colours) > 50  # a rendered page, not a blank canvas


def test_a_partial_last_line_is_dropped_with_a_warning_and_its_episode_rerun(tmp_path, caplog):
    settings = EvalSettings(env_id="agentrl/Maze-v0", agent=AgentSpec(kind="oracle"), max_tasks=4)
    asyncio.run(evaluate(settings, scripted_episode_fn(settings), tmp_path, 2, False))
    path = tmp_path / EPISODES_FILE
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:3]) + "\n" + lines[3][: len(lines[3]) // 2])  # killed mid-write
    calls = []
    resumed = asyncio.run(evaluate(settings, counting(scripted_episode_fn(settings), calls), tmp_path, 2, False))
    assert len(calls) == 1 and len(resumed) == 4
    assert "partial last line" in caplog.text
    assert len(load_finished(tmp_path)) == 4  # the file is clean again: 4 whole lines


def test_a_bad_line_in_the_middle_is_corruption_and_names_its_line(tmp_path):
    settings = EvalSettings(env_id="agentrl/Maze-v0", agent=AgentSpec(kind="oracle"), max_tasks=3)
    asyncio.run(evaluate(settings, scripted_episode_fn(settings), tmp_path, 1, False))
    path = tmp_path / EPISODES_FILE
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "{oops", *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match=r"episodes.jsonl:2: not a valid Trajectory"):
        load_finished(tmp_path)


def test_settings_mismatch_names_the_fields_that_changed_and_only_those(tmp_path):
    settings = EvalSettings(env_id="agentrl/Maze-v0", agent=AgentSpec(kind="oracle"), max_tasks=2)
    asyncio.run(evaluate(settings, scripted_episode_fn(settings), tmp_path, 1, False))
    changed = settings.model_copy(update={"agent": AgentSpec(kind="oracle", temperature=0.7), "seed": 3})
    with pytest.raises(ValueError) as err:
        asyncio.run(evaluate(changed, scripted_episode_fn(changed), tmp_path))
    message = str(err.value)
    assert "agent.temperature: 0.0 -> 0.7" in message and "seed: 0 -> 3" in message
    assert "agent.kind" not in message and "'agent'" not in message and "split" not in message


def test_a_split_without_tasks_is_an_error_not_a_zero_score(tmp_path):
    settings = EvalSettings(env_id="agentrl/Maze-v0", agent=AgentSpec(kind="oracle"), split="dev")
    with pytest.raises(ValueError, match=r"no tasks in split 'dev' \(it has: train \d+, test \d+\)"):
        asyncio.run(evaluate(settings, scripted_episode_fn(settings), tmp_path, 1, False))


def test_report_states_the_run_settings_and_the_k_used(tmp_path):
    settings = EvalSettings(env_id="agentrl/Maze-v0", agent=AgentSpec(kind="random", temperature=0.5),
                            samples_per_task=3, max_tasks=3, env_options={"size": 3})
    runs = asyncio.run(evaluate(settings, scripted_episode_fn(settings), tmp_path, 2, False))
    page = render_report({"random": runs}, "t", details={"random": describe_run(settings, run_info(tmp_path))},
                         ks=report_ks(3))
    settings_table = page[page.index("id='settings'"):page.index("id='summary'")]
    for expected in ("<td>temperature</td><td>0.5</td>", "<td>samples per task (k)</td><td>3</td>",
                     "<td>env options</td><td>{&quot;size&quot;: 3}</td>", f"<td>agentrl version</td><td>{__version__}</td>"):
        assert expected in settings_table
    assert re.search(r"<td>date</td><td>20\d\d-\d\d-\d\dT", settings_table)
    assert "pass@3" in page and "pass@1" in page and "pass@5" not in page


def test_compare_page_pairs_tasks_and_warns_about_different_envs(tmp_path):
    a = EvalSettings(env_id="agentrl/Maze-v0", agent=AgentSpec(kind="oracle"), max_tasks=4)
    b = a.model_copy(update={"agent": AgentSpec(kind="random")})
    c = a.model_copy(update={"env_options": {"size": 4}})
    oracle = asyncio.run(evaluate(a, scripted_episode_fn(a), tmp_path / "a", 2, False))
    rand = asyncio.run(evaluate(b, scripted_episode_fn(b), tmp_path / "b", 2, False))
    same = render_report({"o": oracle, "r": rand}, "t", details={"o": describe_run(a), "r": describe_run(b)})
    gap = sum(t.success for t in oracle) / 4 - sum(t.success for t in rand) / 4
    assert f"<b>{gap:+.3f}</b>" in same and "paired bootstrap interval" in same
    assert same.count("<tr><td>maze") >= 4 and "id='mismatch'" not in same
    other = render_report({"o": oracle, "r": rand}, "t", details={"o": describe_run(a), "r": describe_run(c)})
    assert "id='mismatch'" in other and "env options" in other[other.index("id='mismatch'"):][:200]


def test_progress_is_written_as_lines_when_not_on_a_terminal(tmp_path):
    out = subprocess.run([sys.executable, "-m", "agentrl.cli", "eval", "run", "--env", "agentrl/Maze-v0",
                          "--max-tasks", "4", "-k", "5", "-o", str(tmp_path / "r")],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "eval oracle on agentrl/Maze-v0: 20/20 episodes" in out.stderr
    assert "pass@5" in out.stdout and "pass@1" in out.stdout
