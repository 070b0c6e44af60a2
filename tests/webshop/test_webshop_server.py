"""The web shop served over HTTP: same page model as the text env; shopped in a real headless Chromium."""

import asyncio
import html
import os
import threading

import pytest
from agentrl_envs.webshop.server import WebShopSite
from agentrl_envs.webshop.shop import shared_shop
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer


def two_option_goal():
    shop = shared_shop()
    task = next(t for t in shop.tasks.split("test") if len(shop.goals[t.id].goal_options) == 2)
    return shop, shop.goals[task.id]


async def test_http_session_follows_the_text_env():
    shop, goal = two_option_goal()
    product = shop.by_asin[goal.asin]
    site = WebShopSite()
    async with TestClient(TestServer(site.app())) as client:
        resp = await client.get("/", params={"goal": goal.goal_id})
        base = str(resp.url.path)
        assert resp.status == 200 and base.startswith("/s/")
        page = await resp.text()
        assert html.escape(goal.instruction_text) in page and 'id="search-input"' in page

        async def check_parity():
            # every text node of the agent's observation is on the web page
            text = await (await client.get(f"{base}/text")).text()
            page = await (await client.get(base)).text()
            for node in text.split("\nAvailable actions:")[0].split(" [SEP] "):
                assert html.escape(node.removesuffix(" (selected)")) in page, node
            return page

        resp = await client.get(f"{base}/search", params={"q": product.title})
        page = await check_parity()
        assert f'data-click="{goal.asin.lower()}"' in page and "Page 1 (Total results:" in page
        await client.get(f"{base}/click", params={"v": goal.asin.lower()})
        for value in goal.goal_options.values():
            await client.get(f"{base}/click", params={"v": value})
        page = await check_parity()
        assert page.count('class="option selected"') == 2
        page = await (await client.get(f"{base}/click", params={"v": "no such button"})).text()  # redirected
        assert 'id="error"' in page and "not clickable" in page
        assert 'id="error"' not in await (await client.get(base)).text()  # shown once
        await client.get(f"{base}/click", params={"v": "buy now"})
        page = await check_parity()
        assert "Thank you for shopping with us!" in page and "1.0000" in page
        resp = await client.get(f"{base}/click", params={"v": "buy now"})  # the episode is over
        assert "This episode is over" in await resp.text()

        assert (await client.get("/s/nope")).status == 404
        assert (await client.get("/", params={"goal": "no-such-goal"})).status == 404
    assert not site.sessions  # closed on shutdown


def test_sessions_are_capped_and_closed():
    site = WebShopSite(max_sessions=2)

    async def run():
        async with TestClient(TestServer(site.app())) as client:
            for _ in range(3):
                await client.get("/")
            assert len(site.sessions) == 2

    asyncio.run(run())


@pytest.fixture
def live_site():
    """The site on a real port, served from a background thread."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(WebShopSite().app())
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=30)
    loop.close()


@pytest.mark.browser
def test_shopping_in_headless_chromium(live_site, tmp_path):
    from agentrl_envs.gui.browser.chromium import Browser, BrowserConfig
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    if not os.path.exists(BrowserConfig().chrome_binary):
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium chromium-driver)")
    shop, goal = two_option_goal()
    product = shop.by_asin[goal.asin]
    with Browser(BrowserConfig(width=1200, height=1000)) as browser:
        d = browser.driver
        d.get(f"{live_site}/?goal={goal.goal_id}")
        assert goal.instruction_text in d.find_element(By.ID, "instruction").text
        box = d.find_element(By.ID, "search-input")
        box.send_keys(product.title)
        box.send_keys(Keys.ENTER)
        d.find_element(By.CSS_SELECTOR, f'a.product-link[data-click="{goal.asin.lower()}"]').click()
        assert d.find_element(By.TAG_NAME, "h2").text == product.title
        for value in goal.goal_options.values():
            d.find_element(By.CSS_SELECTOR, f'a.option[data-click="{value}"]').click()
        selected = [e.text for e in d.find_elements(By.CSS_SELECTOR, "a.option.selected")]
        assert sorted(selected) == sorted(goal.goal_options.values())
        shot = tmp_path / "item_page.png"
        d.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5_000
        d.find_element(By.CSS_SELECTOR, 'a.button[data-click="buy now"]').click()
        body = d.find_element(By.TAG_NAME, "body").text
        assert "Thank you for shopping with us!" in body and "1.0000" in body
