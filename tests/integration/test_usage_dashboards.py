"""The usage dashboards in Debian's Chromium (Playwright with executable_path), on a real hub:
logged in as the admin and as a student, asserting on the numbers shown, pressing the stop
button; screenshots are saved in test-artifacts/.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .hubctl import REPO
from .test_usage_hub import (
    ADMIN_PW,
    ALICE_PW,
    BOB_PW,
    UsageAPI,
    login,
    start_hub,
    usage_hub,
    wait_for,
)

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts"
GIB = 1024**3


def _seed(site: Path) -> dict:
    """This week's closed sessions of alice, with numbers computed here by hand."""
    from mlworkshop.config import load_config
    from mlworkshop.site import Site
    from mlworkshop.usage.models import utcnow
    from mlworkshop.usage.quotas import week_start
    from mlworkshop.usage.store import SampleIn, UsageStore

    s = Site(site)
    store = UsageStore(s.usage_db_url(load_config(s.root)))
    now = utcnow()
    monday = week_start(now)
    span = now - monday
    start = monday + span * 0.1
    end = start + span * 0.5  # always inside this week and before now
    sid = store.open_session(
        "alice",
        "",
        profile="gpu-2",
        device_kind="nvidia",
        n_devices=2,
        devices=["nvidia:0", "nvidia:1"],
        started_at=start,
    )
    store.add_samples(
        [SampleIn(sid, end, 1800.0, 2 * GIB)]
    )  # 0.5 CPU-hours; 2 GiB held for the whole span
    store.close_session("alice", "", "stopped", ended_at=end)
    store.close()
    hours = (end - start).total_seconds() / 3600
    gpu, cpu, mem = 2 * hours, 0.5, 2 * hours
    return {"gpu": gpu, "cpu": cpu, "mem": mem, "cost": gpu * 2.0 + cpu * 0.5 + mem * 0.01}


@pytest.fixture
def chromium():
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


def _login(browser, hub, name: str, password: str):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.goto(hub.url + "/hub/login?next=%2Fhub%2Fhome")  # not /hub/spawn: no server is started
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url("**/hub/home")
    return context, page


def test_dashboards_in_chromium(make_hub, chromium):
    ARTIFACTS.mkdir(exist_ok=True)
    hub = usage_hub(
        make_hub,
        **{
            "usage.rates": "{cpu_hour: 0.5, mem_gib_hour: 0.01, gpu_hour: 2.0, currency: EUR}",
            "usage.quotas.default": "{gpu_hours_per_week: 1000}",
        },
    )
    expected = _seed(hub.site)
    start_hub(hub)
    bob = login(hub, "bob", BOB_PW)
    bob.start_server("bob")  # a live CPU-only server for the admin's table
    teacher = login(hub, "teacher", ADMIN_PW)
    admin_api = UsageAPI(hub, teacher.new_token("teacher"))
    wait_for(
        lambda: any(s["mem_mib"] for s in admin_api.json("/api/servers")),
        60,
        what="bob's server sampled",
    )

    # --- the admin's page --------------------------------------------------------------------
    context, page = _login(chromium, hub, "teacher", ADMIN_PW)
    # reached from the hub's navigation bar (JupyterHub's Services menu lists the usage service)
    page.goto(hub.url + "/hub/home")
    assert page.locator("a.dropdown-item", has_text="usage").count() == 1
    page.goto(hub.url + "/services/usage/admin")
    page.wait_for_selector("[data-testid=top-users]")
    assert page.get_by_test_id("who").inner_text() == "teacher"
    assert page.get_by_test_id("top-alice-gpu").inner_text() == f"{expected['gpu']:.2f}"
    assert page.get_by_test_id("top-alice-cpu").inner_text() == f"{expected['cpu']:.2f}"
    assert page.get_by_test_id("top-alice-cost").inner_text() == f"{expected['cost']:.2f}"
    assert (
        page.get_by_test_id("week-gpu-hours").inner_text() == f"{expected['gpu']:.2f}"
    )  # bob holds no GPU
    assert page.get_by_test_id("live-count").inner_text() == "1"
    assert float(page.get_by_test_id("live-bob-mem").inner_text()) > 30  # MiB of a real JupyterLab
    bars = page.locator("[data-testid=chart-gpu] rect")
    assert bars.count() == 30
    assert round(
        sum(float(bars.nth(i).get_attribute("data-value")) for i in range(30)), 2
    ) == round(expected["gpu"], 2)
    page.screenshot(path=str(ARTIFACTS / "usage-admin.png"), full_page=True)

    # the stop button stops bob's server through the hub
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator("[data-testid=live-bob] button.stop").click()
    page.wait_for_function(
        "document.querySelector('[data-testid=stop-result]').textContent.length > 0"
    )
    assert page.get_by_test_id("stop-result").inner_text().startswith("Stopping bob")
    wait_for(
        lambda: not bob.api("GET", "/users/bob").json()["servers"], 60, what="bob's server stopped"
    )
    [bobs] = admin_api.json("/api/sessions", params={"user": "bob"})
    assert bobs["end_reason"] == "admin"
    context.close()

    # --- a student's page --------------------------------------------------------------------
    context, page = _login(chromium, hub, "alice", ALICE_PW)
    page.goto(hub.url + "/services/usage/me")
    page.wait_for_selector("[data-testid=my-quota]")
    assert page.get_by_test_id("who").inner_text() == "alice"
    assert page.get_by_test_id("my-gpu-hours").inner_text() == f"{expected['gpu']:.2f}"
    assert page.get_by_test_id("my-cpu-hours").inner_text() == f"{expected['cpu']:.2f}"
    assert page.get_by_test_id("quota-gpu_hours_per_week").inner_text() == "1000.00"
    assert page.get_by_test_id("used-gpu_hours").inner_text() == f"{expected['gpu']:.2f}"
    assert page.get_by_test_id("left-gpu_hours").inner_text() == f"{1000 - expected['gpu']:.2f}"
    page.screenshot(path=str(ARTIFACTS / "usage-me.png"), full_page=True)
    # the student cannot open the admin page
    response = page.goto(hub.url + "/services/usage/admin")
    assert response.status == 403
    assert page.locator("[data-testid=top-users]").count() == 0
    context.close()
    assert os.path.getsize(ARTIFACTS / "usage-admin.png") > 10_000
