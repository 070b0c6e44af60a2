import asyncio
import shutil
import subprocess
import sys

import pytest

from agentrl.eval.report import render_report
from agentrl.eval.runner import (
    EPISODES_FILE,
    AgentSpec,
    EvalSettings,
    evaluate,
    load_finished,
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


def test_a_crashing_episode_is_recorded_as_infra_error_and_the_run_goes_on(tmp_path):
    settings = EvalSettings(env_id="agentrl/Maze-v0", agent=AgentSpec(kind="oracle"), max_tasks=10)

    async def flaky(task_id, seed):
        if task_id.endswith(("1", "3", "5", "7", "9")):
            raise ConnectionError("backend went away")
        return await scripted_episode_fn(settings)(task_id, seed)

    results = asyncio.run(evaluate(settings, flaky, tmp_path, 4, False))
    bad = [t for t in results if t.status == "infra_error"]
    assert bad and all("ConnectionError: backend went away" in t.error for t in bad)
    assert len(results) == 10


def test_cli_eval_run_compare_and_bad_env(tmp_path):
    cli = [sys.executable, "-m", "agentrl.cli", "eval"]
    for agent in ("oracle", "random"):
        out = subprocess.run([*cli, "run", "--env", "agentrl/Maze-v0", "--agent", agent, "--max-tasks", "8", "-k", "2",
                              "-O", str(tmp_path / agent)], capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 0, out.stderr
        assert (tmp_path / agent / "report.html").exists()
    (tmp_path / "oracle" / "report.html").unlink()
    rewritten = subprocess.run([*cli, "report", str(tmp_path / "oracle")], capture_output=True, text=True, timeout=120, check=False)
    assert rewritten.returncode == 0 and (tmp_path / "oracle" / "report.html").exists()
    cmp = subprocess.run([*cli, "compare", str(tmp_path / "oracle"), str(tmp_path / "random"), "-O",
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
