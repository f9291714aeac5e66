"""Exclusive GPU allocation on a real hub: a configured inventory of 2 fake GPUs, the local
backend, real JupyterLab servers whose environment is read from inside their kernels.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import time

import pytest

from .hubctl import Server, mlw

pytestmark = pytest.mark.integration

PASSWORD = "Gpu-class-pass-9"
TWO_GPUS = "[{kind: nvidia, index: 0, name: Fake GPU, memory_mib: 1024}, {kind: nvidia, index: 1, name: Fake GPU, memory_mib: 1024}]"


def _spawn(browser, name: str, profile: str | None):
    body = {"profile": profile} if profile else {}
    return browser.api("POST", f"/users/{name}/server", json=body)


async def _visible_devices(hub, browser, name: str) -> str:
    server = Server(hub.url, name, browser.new_token(name))
    out = await server.run_code(
        "import os; print('DEV=' + os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>'))"
    )
    return out.strip().split("DEV=")[-1]


async def test_exclusive_gpus_are_never_shared(make_hub):
    hub = make_hub(
        **{
            "accelerators.mode": "exclusive",
            "accelerators.inventory": TWO_GPUS,
            "accelerators.max_per_user": 1,
        }
    )
    for name in ("ann", "ben", "cat"):
        mlw(hub.site, "user", "add", name, "--password-stdin", input=PASSWORD + "\n")
    listing = mlw(hub.site, "accelerators")
    assert "Fake GPU" in listing.stdout
    hub.start()
    browsers = {}
    for name in ("ann", "ben", "cat"):
        browsers[name] = hub.browser()
        assert browsers[name].login(name, PASSWORD).status_code == 302

    # the spawn page offers CPU and 1 x GPU (the limit hides 2 x GPU)
    form = browsers["ann"].client.get("/hub/spawn").text
    assert "1 × GPU" in form and "2 × GPU" not in form

    # a crafted request for more than the profiles allow is refused before anything starts
    crafted = _spawn(browsers["ann"], "ann", "gpu-8")
    assert crafted.status_code >= 400 and "not available to you" in crafted.text, crafted.text

    for name in ("ann", "ben"):
        response = _spawn(browsers[name], name, "gpu-1")
        assert response.status_code in (201, 202), response.text
        browsers[name].wait_ready(name)
    seen = {name: await _visible_devices(hub, browsers[name], name) for name in ("ann", "ben")}
    assert sorted(seen.values()) == ["0", "1"], seen

    # the third student is told why, and nothing is left half-started
    refused = _spawn(browsers["cat"], "cat", "gpu-1")
    assert refused.status_code >= 400, refused.text
    assert "in use" in refused.text and "ann" in refused.text and "ben" in refused.text, (
        refused.text
    )
    model = browsers["cat"].api("GET", "/users/cat").json()
    assert not model["servers"] and not model["pending"]

    # a CPU-only server next to them sees no GPU at all
    assert _spawn(browsers["cat"], "cat", "cpu").status_code in (201, 202)
    browsers["cat"].wait_ready("cat")
    assert await _visible_devices(hub, browsers["cat"], "cat") == ""
    browsers["cat"].stop_server("cat")

    # ann stops: cat gets her device
    browsers["ann"].stop_server("ann")
    assert _spawn(browsers["cat"], "cat", "gpu-1").status_code in (201, 202)
    browsers["cat"].wait_ready("cat")
    assert await _visible_devices(hub, browsers["cat"], "cat") == seen["ann"]

    # the allocation survives a hub restart: ann still cannot take a busy device
    hub.stop()
    hub.start()
    browsers["ann"] = hub.browser()
    browsers["ann"].login("ann", PASSWORD)
    assert "in use" in _spawn(browsers["ann"], "ann", "gpu-1").text

    # ben's server crashes (killed): his device is freed for the next request
    if os.geteuid() == 0:
        subprocess.run(["pkill", "-KILL", "-u", hub.prefix + "ben"], check=True)
        time.sleep(1)
        response = _spawn(browsers["ann"], "ann", "gpu-1")
        assert response.status_code in (201, 202), response.text
        browsers["ann"].wait_ready("ann")
        assert await _visible_devices(hub, browsers["ann"], "ann") == seen["ben"]


def _text(page) -> str:
    """What a student reads on a page: tags dropped, entities decoded, spaces collapsed."""
    shown = re.sub(r"<(script|style)\b.*?</\1>", " ", page.text, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", shown)).split())


def _submit_spawn_form(browser, page, profile: str):
    """Press Start on a spawn page with `profile` chosen, as the browser would post it."""
    action = re.search(r'<form[^>]*id="spawn_form"[^>]*action="([^"]*)"', page.text, re.S)
    assert action, f"no spawn form on the page ({page.status_code}): {_text(page)[:600]}"
    return browser.client.post(html.unescape(action.group(1)), data={"profile": profile})


def _progress_messages(browser, name: str) -> list[str]:
    messages = []
    with browser.client.stream("GET", f"/hub/api/users/{name}/server/progress") as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                messages.append(json.loads(line[5:])["message"])
    return messages


async def test_a_refused_student_is_told_why_and_starts_on_cpu_from_home(make_hub):
    """Issue 20: both GPUs held; cat's 1 × GPU request is refused in words, and Home → Start My
    Server then offers CPU only, says why, and starts it (the refused choice is not re-used)."""
    hub = make_hub(
        **{
            "accelerators.mode": "exclusive",
            "accelerators.inventory": TWO_GPUS,
            "accelerators.max_per_user": 1,
        }
    )
    for name in ("ann", "ben", "cat"):
        mlw(hub.site, "user", "add", name, "--password-stdin", input=PASSWORD + "\n")
    hub.start()
    browsers = {}
    for name in ("ann", "ben", "cat"):
        browsers[name] = hub.browser()
        assert browsers[name].login(name, PASSWORD).status_code == 302
    cat = browsers["cat"]

    assert _spawn(browsers["ann"], "ann", "gpu-1").status_code in (201, 202)
    browsers["ann"].wait_ready("ann")
    opened = cat.client.get("/hub/spawn")  # one GPU is still free when cat opens the page
    assert "1 × GPU" in opened.text
    assert _spawn(browsers["ben"], "ben", "gpu-1").status_code in (201, 202)
    browsers["ben"].wait_ready("ben")

    refused = _submit_spawn_form(cat, opened, "gpu-1")
    said = _text(refused)
    assert refused.status_code == 409, said
    assert "Both GPUs are in use" in said and "ann" in said and "ben" in said, said
    assert "HTTP 409" not in said and "error (" not in said, said
    streamed = _progress_messages(cat, "cat")
    assert streamed and "Both GPUs are in use" in streamed[-1], streamed
    assert "HTTP 409" not in streamed[-1], streamed

    home = cat.client.get("/hub/home")
    start = re.search(r'<a id="start"[^>]*href="([^"]+)"', home.text, re.S)
    assert start and "Start" in _text(home), _text(home)
    page = cat.client.get(html.unescape(start.group(1)))
    said = _text(page)
    assert page.status_code == 200, said
    assert "Failed to start" not in said and "contact admin" not in said, said
    assert "CPU only" in said and "1 × GPU" not in said, said
    assert "Both GPUs are in use" in said and "ann" in said and "ben" in said, (
        said
    )  # why no GPU is offered

    started = _submit_spawn_form(cat, page, "cpu")
    assert started.status_code == 200, _text(started)
    cat.wait_ready("cat")
    assert await _visible_devices(hub, cat, "cat") == ""

    # a choice that was fine when made but is no longer allowed is not re-used either: ann ran
    # on a GPU, then the admin takes GPUs away from students
    browsers["ann"].stop_server("ann")
    hub.stop()
    mlw(hub.site, "config", "set", "accelerators.max_per_user", "0")
    hub.start()
    ann = hub.browser()
    assert ann.login("ann", PASSWORD).status_code == 302
    page = ann.client.get("/hub/spawn")  # nothing to choose now: no form, the server starts at once
    assert page.status_code == 200, _text(page)
    assert ann.wait_ready("ann")["user_options"].get("profile") in (None, "cpu")
    assert await _visible_devices(hub, ann, "ann") == ""
