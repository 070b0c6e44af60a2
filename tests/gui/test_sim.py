"""The pure-Python GUI tier: contract, determinism, oracle, rewards worked by hand."""

import re

import numpy as np
import pytest
from agentrl_envs.gui.sim.env import GuiSimEnv
from agentrl_envs.gui.sim.families import FAMILIES
from gymnasium.utils.env_checker import check_env

import agentrl
from agentrl.env import EnvOptionError, OracleAgent, RandomAgent, aplay_episode
from agentrl.env.tasks import hash_split


def ids(obs: str, role: str) -> list[int]:
    return [int(i) for i in re.findall(rf"\[(\d+)\] {role}\b", obs)]


def test_registered_and_gymnasium_contract():
    env = agentrl.make("agentrl/GuiSim-v0")
    assert len(FAMILIES) >= 8
    assert set(env.tasks.split_sizes()) == {"train", "dev", "test"}
    assert env.tasks.split_sizes()["test"] > 0
    check_env(env, skip_render_check=True)
    assert agentrl.make("agentrl/GuiSim-login-user-v0").tasks[0].id == "login-user/0000"


def test_task_fixed_by_id_not_by_seed():
    env = GuiSimEnv()
    a, _ = env.reset(seed=1, options={"task_id": "click-button/0003"})
    b, _ = env.reset(seed=999, options={"task_id": "click-button/0003"})
    c, _ = env.reset(seed=1, options={"task_id": "click-button/0004"})
    assert a == b and a != c
    # same seed, no task id -> same sampled task
    assert env.reset(seed=5)[0] == env.reset(seed=5)[0]


@pytest.mark.parametrize("family", sorted(FAMILIES))
async def test_oracle_solves_every_family(family):
    env = GuiSimEnv(families=[family], instances_per_family=40)
    for task in env.tasks:
        trajectory = await aplay_episode(env, OracleAgent(env), seed=0, task_id=task.id)
        assert trajectory.success and trajectory.final_reward == 1.0, task.id
        assert all(step.valid_action and step.tool_calls == 1 for step in trajectory.steps)


async def test_random_agent_far_below_oracle():
    env = GuiSimEnv(instances_per_family=10)
    agent = RandomAgent(env, seed=0)
    wins = [(await aplay_episode(env, agent, seed=0, task_id=t.id)).success for t in env.tasks]
    assert np.mean(wins) < 0.5


def test_login_by_hand():
    env = GuiSimEnv(families=["login-user"])
    obs, info = env.reset(options={"task_id": "login-user/0000"})
    user, _password = re.findall(r'"([^"]*)"', obs.split("\n")[0])
    box_user, box_password = ids(obs, "textbox")
    (login,) = ids(obs, "button")
    obs, r, term, _trunc, info = env.step(f'type({box_user}, "{user}")')
    assert (r, term, info["tool_calls"], info["valid_action"]) == (0.0, False, 1, True)
    assert f'value="{user}" focused' in obs
    env.step(f'type({box_password}, "wrong")')
    obs, r, term, _trunc, info = env.step(f"click({login})")
    assert (r, term, info["success"]) == (-1.0, True, False)


def test_checkbox_partial_credit_by_hand():
    # click-checkboxes: raw reward = (#boxes right - #boxes wrong) / #boxes, success only at 1.
    env = GuiSimEnv(families=["click-checkboxes"])
    for task in env.tasks:
        obs, _ = env.reset(options={"task_id": task.id})
        boxes = ids(obs, "checkbox")
        wanted = obs.split("\n")[0].removeprefix("Task: Select ").removesuffix(" and click Submit.")
        if len(boxes) == 4 and wanted != "nothing" and len(wanted.split(", ")) == 1:
            break
    (submit,) = ids(obs, "button")
    # Submit untouched: 3 of 4 boxes right (unchecked), the wanted one wrong -> (3 - 1) / 4.
    _, r, term, _, info = env.step(f"click({submit})")
    assert (r, term, info["success"]) == (0.5, True, False)


def test_invalid_actions_leave_the_page_unchanged():
    env = GuiSimEnv(families=["choose-list"], max_invalid_actions=3)
    obs, info = env.reset(options={"task_id": "choose-list/0001"})
    key = info["state_key"]
    (box,) = ids(obs, "combobox")
    (submit,) = ids(obs, "button")
    for action, message in [
        ("hello", "No UI action found"),
        ("click(99)", "no element [99]"),
        (f'type({submit}, "x")', "needs a textbox"),
    ]:
        obs, _r, _term, trunc, info = env.step(action)
        assert message in obs and not info["valid_action"] and info["state_key"] == key
        assert info["tool_calls"] == 0
    assert trunc and info["truncation"] == "invalid_actions"
    env.reset(options={"task_id": "choose-list/0001"})
    obs, *_, info = env.step(f'select({box}, "Atlantis")')
    assert "has no option 'Atlantis'" in obs and not info["valid_action"]


def test_state_key_recurs_and_tracks_changes():
    env = GuiSimEnv(families=["click-collapsible"])
    obs, info = env.reset(options={"task_id": "click-collapsible/0002"})
    (header,) = ids(obs, "heading")
    _, _, _, _, opened = env.step(f"click({header})")
    _, _, _, _, closed = env.step(f"click({header})")
    assert opened["state_key"] != info["state_key"]
    assert closed["state_key"] == info["state_key"]  # the same page again: the same key
    assert '[1] heading' in obs and '[2] group expanded=false\n  [3] button "Submit"' in obs
    env.step('scroll("down")')  # no layout in the Python tier: scrolling changes nothing
    assert env.state_key() == closed["state_key"]


def test_fork_is_an_independent_copy():
    env = GuiSimEnv(families=["enter-password"])
    _obs, _ = env.reset(options={"task_id": "enter-password/0005"})
    env.step(env.oracle_action())
    twin = env.fork()
    assert twin.state_key() == env.state_key() and twin.render() == env.render()
    while not env.done:
        env.step(env.oracle_action())
    assert not twin.done and twin.turn == 1
    twin.step('type(2, "nope")')
    assert env.state_key() != twin.state_key()


def test_unknown_family_is_a_clear_error():
    with pytest.raises(EnvOptionError, match="unknown families"):
        GuiSimEnv(families=["drag-cube"])


def chi_square(observed: dict[int, int], expected: dict[int, float]) -> float:
    return sum((observed.get(k, 0) - e) ** 2 / e for k, e in expected.items())


# Upper 0.1% points of the chi-square distribution (standard tables), by degrees of freedom.
CHI2_999 = {4: 18.467, 6: 22.458}


def test_click_checkboxes_box_count_is_uniform_2_to_6():
    # MiniWoB: elems = core.randi(2, 7) once per task -> 2..6 boxes, 1/5 each; each box wanted
    # with probability 1/2. 5000 seeds: 1000 expected per count.
    n = 5000
    counts: dict[int, int] = {}
    wanted = total = 0
    for seed in range(n):
        page = FAMILIES["click-checkboxes"](np.random.default_rng(seed))
        boxes = [node for node in page.roots if node.role == "checkbox"]
        counts[len(boxes)] = counts.get(len(boxes), 0) + 1
        wanted += len(page.wanted)
        total += len(boxes)
    assert set(counts) == {2, 3, 4, 5, 6}
    assert chi_square(counts, {k: n / 5 for k in range(2, 7)}) < CHI2_999[4]
    # Wanted boxes ~ Binomial(total, 1/2): within 4 standard deviations of total/2.
    assert abs(wanted - total / 2) < 4 * (total / 4) ** 0.5


def test_click_link_has_miniwob_link_count():
    # MiniWoB click-link: 20 words, each a link with probability 0.2, redrawn until one is:
    # links ~ Binomial(20, 0.2) given >= 1, mean 4 / (1 - 0.8**20) = 4.046.
    from math import comb

    n = 4000
    counts: dict[int, int] = {}
    for seed in range(n):
        page = FAMILIES["click-link"](np.random.default_rng(seed))
        links = [node for node in page.all_nodes() if node.role == "link"]
        assert len(page.roots[0].name.split()) + len(links) == 20
        counts[len(links)] = counts.get(len(links), 0) + 1
    p_any = 1 - 0.8**20
    pmf = {k: comb(20, k) * 0.2**k * 0.8 ** (20 - k) / p_any for k in range(1, 21)}
    # Bins 1..6 and a pooled tail of 7+ (expected counts all >= 5): 6 degrees of freedom.
    expected = {k: n * pmf[k] for k in range(1, 7)} | {7: n * sum(pmf[k] for k in range(7, 21))}
    observed = {k: counts.get(k, 0) for k in range(1, 7)} | {7: sum(v for k, v in counts.items() if k >= 7)}
    assert chi_square(observed, expected) < CHI2_999[6]
    mean = sum(k * v for k, v in counts.items()) / n
    assert abs(mean - 4.046) < 0.15


def boxes(obs: str, role: str) -> dict[str, list[int]]:
    return {name: [int(v) for v in box.split(",")]
            for name, box in re.findall(rf'\] {role} "([^"]*)" box=\[([\d,]+)\]', obs)}


def find_task(env: GuiSimEnv, accept) -> str:
    for task in env.tasks:
        obs, _ = env.reset(options={"task_id": task.id})
        if accept(obs):
            return obs
    raise AssertionError("no such instance")


def test_click_test_2_by_coordinates():
    env = GuiSimEnv(families=["click-test-2"])

    def overlapping(obs):
        (x1, y1, _, _), (x2, y2, _, _) = boxes(obs, "button").values()
        return abs(x1 - x2) < 30 and abs(y1 - y2) < 30

    obs = find_task(env, overlapping)
    one, two = boxes(obs, "button")["ONE"], boxes(obs, "button")["TWO"]
    # A point inside both boxes hits TWO: it is drawn on top -> MiniWoB's -1.
    x, y = max(one[0], two[0]) + 5, max(one[1], two[1]) + 5
    _, r, term, _, info = env.step(f"click_at({x}, {y})")
    assert (r, term, info["valid_action"], info["tool_calls"]) == (-1.0, True, True, 1)
    # A point of ONE that TWO does not cover -> +1; a point on neither button does nothing.
    env.reset(options={"task_id": env.task.id})
    free = next((a, b) for a in range(one[0], one[0] + 40) for b in range(one[1], one[1] + 40)
                if not (two[0] <= a < two[0] + 40 and two[1] <= b < two[1] + 40))
    _, r, term, _, info = env.step("click_at(0, 0)")  # the task bar: no button there
    assert (r, term, info["valid_action"]) == (0.0, False, True)
    _, r, term, _, info = env.step(f"click_at({free[0]}, {free[1]})")
    assert (r, term, info["success"]) == (1.0, True, True)


def test_drag_box_by_hand():
    # Solved iff 0 < small - large < 30 on both axes (CSS offsets, equal to box differences).
    env = GuiSimEnv(families=["drag-box"])
    for dx, dy, reward in [(15, 15, 1.0), (29, 1, 1.0), (30, 15, -1.0), (15, 0, -1.0)]:
        obs, _ = env.reset(options={"task_id": "drag-box/0003"})
        small, large = boxes(obs, "text")["s"], boxes(obs, "text")["L"]
        x, y = small[0] + 3, small[1] + 3  # grab near the small box's corner
        obs, *_ = env.step(f"drag({x}, {y}, {x + large[0] + dx - small[0]}, {y + large[1] + dy - small[1]})")
        assert boxes(obs, "text")["s"] == [large[0] + dx, large[1] + dy, 28, 28]
        assert boxes(obs, "text")["L"] == large
        (submit,) = ids(obs, "button")
        assert env.step(f"click({submit})")[1] == reward


def test_coordinate_actions_are_checked():
    env = GuiSimEnv(families=["drag-box", "click-button"])
    env.reset(options={"task_id": "drag-box/0000"})
    obs, *_, info = env.step("click_at(160, 20)")
    assert "(160, 20) is outside the page, which spans x 0-159 and y 0-209" in obs and not info["valid_action"]
    obs, *_, info = env.step("drag(10, 10, 10, 210)")
    assert "outside the page" in obs and info["tool_calls"] == 0
    obs, *_, info = env.step("click_at(-1, 5)")
    assert "cannot be negative" in obs and not info["valid_action"]
    env.reset(options={"task_id": "click-button/0000"})  # no boxes shown: use ids
    obs, *_, info = env.step("click_at(10, 10)")
    assert "needs a page that shows element boxes" in obs and not info["valid_action"]
    assert "box=" not in obs


def test_click_button_sequence_and_dialog_rewards():
    env = GuiSimEnv(families=["click-button-sequence", "click-dialog-2"])
    obs, _ = env.reset(options={"task_id": "click-button-sequence/0000"})
    one, two = ids(obs, "button")
    assert env.step(f"click({two})")[1:3] == (0.0, False)  # the first click only records
    assert env.step(f"click({one})")[1:3] == (-1.0, True)  # TWO then ONE: wrong order
    obs = find_task(env, lambda o: 'labeled "x"' in o)
    close, cancel, _ok = ids(obs, "button")
    assert env.step(f"click({cancel})")[1] == -1.0
    env.reset(options={"task_id": env.task.id})
    assert env.step(f"click({close})")[1] == 1.0  # the title bar's "x" is the Close button


NEW_FAMILIES = {"click-test-2": 0.6, "click-button-sequence": 0.35, "click-dialog-2": 0.4, "drag-box": 0.15,
                "use-slider": 0.15, "use-slider-2": 0.05}


@pytest.mark.parametrize("family", sorted(NEW_FAMILIES))
async def test_random_agent_per_new_family(family):
    # click-test-2 has two buttons and either one ends it, so a random clicker wins about half
    # the time on MiniWoB's own page too; the others are well below.
    env = GuiSimEnv(families=[family], instances_per_family=100)
    agent = RandomAgent(env, seed=0)
    wins = [(await aplay_episode(env, agent, seed=0, task_id=t.id)).success for t in env.tasks]
    assert np.mean(wins) < NEW_FAMILIES[family]


def slider_page(low: int, high: int, vertical: bool, length: int, value: int):
    """A use-slider page with the given range, orientation, outer track length and value."""
    page = FAMILIES["use-slider"](np.random.default_rng(0))
    page.slider.low, page.slider.high, page.slider.vertical, page.length = low, high, vertical, length
    set_value(page, value)
    return page


def set_value(page, value: int) -> None:
    page.slider.value = value
    page.layout()


def test_use_slider_pointer_and_keys_by_hand():
    from agentrl_envs.gui.actions import parse_action

    # Horizontal 0..100 on a 52 px track (50 px inside the border), at x 10-61.
    page = slider_page(0, 100, False, 52, 40)
    left, top, width, height = page.track.box
    assert (left, width, height) == (10, 52, 10)

    def act(text):
        action = parse_action(text)
        page.apply(action, page.handle if action.target is not None else None)
        return page.slider.value

    # A press on the track: value = low + (x - left) / width * 100, halves rounded up.
    act(f'press({page.handle.id}, "End")')  # park the handle at the far end, out of the way
    assert act(f"click_at({left + 13}, {top + 5})") == 25  # 13/52 = 0.25 exactly
    assert act(f"click_at({left}, {top})") == 0
    act(f'press({page.handle.id}, "Home")')
    assert act(f"click_at({left + 51}, {top + 9})") == 98  # 51/52 = 0.9808 -> 98.08
    assert act(f"click_at({left + 33}, {top + 5})") == 63  # 63.46
    # The handle sits at left + 50 * p - 5 (a 14 px square): at 63 that is 26.5 -> shown 27.
    # The handle's corner is at left + 50 p - 5 = 36.5 (shown rounded half up: 37), top - 2.
    assert page.handle.box == [37, top - 2, 14, 14] and page.handle.focused
    # Grabbing the handle keeps the value; dragging moves it with the pointer, offset by where
    # it was grabbed (x - corner - 6 = 40 - 36.5 - 6 = -2.5): at x 50 -> (52.5 - 10) / 52.
    assert act(f"click_at(40, {top})") == 63
    assert act(f"drag(40, {top}, 50, 150)") == 82  # 81.73
    # Keys on the focused handle: PageDown / PageUp a fifth of the range, arrows 1, Home / End.
    assert [act(f'press("{key}")') for key in ("PageDown", "ArrowUp", "End", "ArrowRight", "ArrowLeft")] == [
        62, 63, 100, 100, 99]
    page.apply(parse_action(f"click({page.submit.id})"), page.submit)
    assert page.done and page.raw_reward == (1.0 if page.target == 99 else -1.0)


def test_use_slider_vertical_and_wrapping_layout():
    from agentrl_envs.gui.actions import parse_action

    # Vertical: the top is the maximum, value = low + (1 - (y - top) / height) * range.
    page = slider_page(10, 60, True, 102, 30)
    left, top, width, height = page.track.box
    assert (left, top, width, height) == (10, 60, 10, 102)
    page.apply(parse_action('press(2, "Home")'), page.handle)  # handle to the bottom
    page.apply(parse_action(f"click_at(15, {top + 25})"), None)
    assert page.slider.value == 48  # 10 + (1 - 25/102) * 50 = 47.75
    # Horizontal, longest track (116 px): "100" no longer fits after it (measured in Chromium:
    # the value wraps under it and the track moves up from y 64 to y 60, Submit down to 93).
    page = slider_page(0, 100, False, 116, 50)
    set_value(page, 50)
    assert page.track.box[1] == 64 and page.shown.box[:2] == [134, 65] and page.submit.box[1] == 81
    set_value(page, 100)
    assert page.track.box[1] == 60 and page.shown.box[:2] == [15, 77] and page.submit.box[1] == 93
    assert page.handle.box == [119, 58, 14, 14]  # the browser's box for this page at 100


def test_tasks_file(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text('{"family": "use-slider", "seed": 7}\n\n{"family": "login-user", "seeds": [1, 2], "split": "test"}\n')
    env = agentrl.make("agentrl/GuiSim-v0", tasks=str(path))
    assert [(t.id, t.split) for t in env.tasks] == [
        ("use-slider/0007", hash_split("use-slider/0007")), ("login-user/0001", "test"),
        ("login-user/0002", "test")]
    # The same instance as the built-in id: a file names tasks, it does not make new ones.
    builtin = GuiSimEnv(families=["use-slider"])
    assert env.reset(options={"task_id": "use-slider/0007"})[0] == builtin.reset(
        options={"task_id": "use-slider/0007"})[0]
    assert env.tasks.split("test").ids() == ["login-user/0001", "login-user/0002"]
    with pytest.raises(EnvOptionError, match="cannot read"):
        GuiSimEnv(tasks=str(tmp_path / "missing.jsonl"))
    with pytest.raises(EnvOptionError, match="unknown family 'use-slider'"):  # families= narrows a file
        GuiSimEnv(tasks=str(path), families=["login-user"])


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ('{"family": "login-user", "seed": 1}\n{"family": "login-user", "seeds": [3, -1]}',
         "line 2: field 'seeds.1': Input should be greater than or equal to 0"),
        ('{"family": "drag-cube", "seed": 1}', "line 1: field 'family': unknown family 'drag-cube'"),
        ('{"family": "login-user", "seed": 1, "seeds": [2]}', 'line 1: give exactly one of "seed"'),
        ('{"family": "login-user"}', 'line 1: give exactly one of "seed"'),
        ('{"family": "login-user", "seed": 1}\n{"family": "login-user" "seed": 2}', "line 2: not valid JSON"),
        ('{"family": "login-user", "seed": 1}\n{"family": "login-user", "seeds": [1]}',
         "line 2: field 'seeds': task 'login-user/0001' is listed twice"),
        ('{"family": "login-user", "seed": "3"}', "line 1: field 'seed': Input should be a valid integer"),
        ('{"family": "login-user", "seed": true}', "line 1: field 'seed': Input should be a valid integer"),
        ('{"family": "login-user", "sed": 3}', "line 1: field 'sed': Extra inputs are not permitted"),
        ('{"family": "login-user", "seed": 1, "split": "val"}', "line 1: field 'split'"),
        ("[1, 2]", "line 1: expected a JSON object"),
        ("\n\n", "empty (one JSON object per line)"),
    ],
)
def test_bad_tasks_file_names_line_and_field(tmp_path, lines, message):
    path = tmp_path / "tasks.jsonl"
    path.write_text(lines + "\n")
    with pytest.raises(EnvOptionError, match=re.escape(message)):
        GuiSimEnv(tasks=str(path))


def test_keyboard_activates_the_focused_control():
    # As in Chromium (checked on the real pages): Enter / Space click a focused button, Space
    # toggles a focused checkbox. click-dialog-2 opens with Cancel focused.
    env = GuiSimEnv(families=["click-dialog-2", "click-checkboxes"])
    obs = find_task(env, lambda o: 'labeled "Cancel"' in o)
    assert '"Cancel" focused' in obs
    assert env.step('press("Enter")')[1:3] == (1.0, True)
    obs = find_task(env, lambda o: 'labeled "OK"' in o)
    assert env.step('press("Space")')[1:3] == (-1.0, True)  # Cancel again: the wrong button
    obs, _ = env.reset(options={"task_id": "click-checkboxes/0001"})
    first = ids(obs, "checkbox")[0]
    obs, *_ = env.step(f'press({first}, "Space")')
    assert f"[{first}] checkbox" in obs and "checked=true focused" in obs
    obs, *_ = env.step('press("Enter")')  # Enter does not toggle a checkbox
    assert "checked=true focused" in obs


def test_use_slider_2_by_hand():
    # Three sliders 0-20 on 140 px tracks at y 60, 81, 102: a press at x maps to
    # (x - 10) / 140 * 20, so x = 10 + 7 v gives v exactly; Submit: +1 iff all three match.
    env = GuiSimEnv(families=["use-slider-2"])
    obs, _ = env.reset(options={"task_id": "use-slider-2/0004"})
    wanted = [int(v) for v in re.search(r"combination \[(.*)\]", obs).group(1).split(",")]
    tracks = [[int(v) for v in box.split(",")] for box in re.findall(r"slider box=\[([\d,]+)\]", obs)]
    assert tracks == [[10, 60 + 21 * i, 140, 10] for i in range(3)]
    for i, v in enumerate(wanted):
        handle = env.page.sliders[i].handle.box
        x = 10 + 7 * v
        if handle[0] <= x < handle[0] + 14:  # on the handle a press keeps the value: use keys
            env.step(f'press({env.page.sliders[i].handle.id}, "{"End" if v > 10 else "Home"}")')
        obs, *_ = env.step(f"click_at({x}, {65 + 21 * i})")
    assert [s.value for s in env.page.sliders] == wanted
    assert re.findall(r'\] text "(\d+)"', obs) == [str(v) for v in wanted]
    (submit,) = ids(obs, "button")
    assert env.step(f"click({submit})")[1] == 1.0
