"""The hub in Chinese, on a real hub: pages and refusals in the language the browser asks for (or
hub.language's), and, in Debian's Chromium run with --lang=zh-CN, zh-TW and en (Playwright,
executable_path=/usr/bin/chromium), the sign-in, sign-up, Accounts, spawn form and usage pages
and JupyterLab's menu bar in that language; screenshots go to test-artifacts/i18n-*.png.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
import pytest

from .hubctl import REPO, mlw
from .test_usage_hub import ADMIN_PW, ALICE_PW, BOB_PW, TWO_GPUS, start_hub, usage_hub

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
CAROL_PW = "carol-Secret-42"

# what each language shows, page by page
SHOWN = {
    "zh-CN": {
        "login": ["登录", "用户名：", "还没有账户？"],
        "signup": ["注册", "创建账户"],
        "accounts": ["账户", "批准", "重置密码"],
        "spawn": ["服务器选项", "为这台服务器选择资源", "仅 CPU", "启动"],
        "lab": ("#jp-MainMenu", ["文件", "帮助", "设置", "运行"]),
        "usage": ["我的配额", "本周 CPU 小时"],
    },
    "zh-TW": {
        "login": ["登入", "使用者名稱：", "還沒有帳戶？"],
        "signup": ["註冊", "建立帳戶"],
        "accounts": ["帳戶", "核准", "重設密碼"],
        "spawn": ["伺服器選項", "為這台伺服器選擇資源", "僅 CPU", "啟動"],
        # jupyterlab-language-pack-zh-TW (4.5.post3, 517 strings; zh-CN's has 2125) translates
        # no menu labels: its menu bar stays English, the launcher and file browser are Chinese
        "lab": ("body", ["啟動", "主控台", "名稱"]),
        "usage": ["我的配額", "本週 CPU 小時"],
    },
    "en": {
        "login": ["Sign in", "Username:", "No account yet?"],
        "signup": ["Sign up", "Create account"],
        "accounts": ["Accounts", "Reset password"],
        "spawn": ["Server Options", "Choose the resources for this server", "CPU only", "Start"],
        "lab": ("#jp-MainMenu", ["File", "Help", "Settings", "Run"]),
        "usage": ["My quota", "CPU-hours this week"],
    },
}
STUDENTS = {"zh-CN": ("alice", ALICE_PW), "zh-TW": ("bob", BOB_PW), "en": ("carol", CAROL_PW)}
LAB_LOCALE = {"zh-CN": "zh_CN", "zh-TW": "zh_TW", "en": "en"}


def _get(hub, path: str, language: str, client: httpx.Client | None = None) -> httpx.Response:
    getter = client.get if client else httpx.get
    return getter(hub.url + path, headers={"Accept-Language": language}, timeout=30)


def test_pages_and_refusals_follow_the_browser_then_the_site(make_hub):
    hub = make_hub(**{"culler.enabled": "false"})
    hub.start()
    for language, heading in (("zh-CN,zh;q=0.9", "登录"), ("zh-TW", "登入"), ("en-US", "Sign in")):
        assert f"<h1>{heading}</h1>" in _get(hub, "/hub/login", language).text
    assert "<h1>Sign in</h1>" in _get(hub, "/hub/login", "").text  # none given: English

    # a refusal made in Python (the signup form's), in the language of the request
    with httpx.Client(base_url=hub.url, follow_redirects=True, timeout=30) as client:
        client.headers["Accept-Language"] = "zh-TW"
        page = client.get("/hub/signup")
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
        refused = client.post(
            "/hub/signup",
            data={
                "_xsrf": xsrf,
                "username": "dora",
                "password": "dora-Secret-42",
                "password_confirm": "other",
            },
        )
        assert refused.status_code == 400
        assert "兩次輸入的密碼不一致。" in refused.text and "建立帳戶" in refused.text
        # JupyterHub's own words on a failed sign-in
        client.headers["Accept-Language"] = "zh-CN"
        page = client.get("/hub/login")
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
        failed = client.post(
            "/hub/login", data={"_xsrf": xsrf, "username": "nobody", "password": "wrong-wrong"}
        )
        assert "用户名或密码错误" in failed.text, failed.text[-2000:]
    # the student guide, linked from the sign-in page, readable before signing in
    assert 'href="/hub/guide"' in _get(hub, "/hub/login", "zh-CN").text
    guide = _get(hub, "/hub/guide", "zh-CN")
    assert guide.status_code == 200 and "submissions/" in guide.text and "提交作业" in guide.text
    hub.stop()

    # hub.language names one: every browser gets it
    mlw(hub.site, "config", "set", "hub.language", "zh-TW")
    hub.start()
    assert "<h1>登入</h1>" in _get(hub, "/hub/login", "en-US").text
    assert "<h1>登入</h1>" in _get(hub, "/hub/login", "zh-CN").text


@pytest.fixture
def playwright():
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        yield pw


def _shows(page, texts: list[str], what: str) -> None:
    body = page.locator("body").inner_text()
    missing = [t for t in texts if t not in body]
    assert not missing, f"{what}: {missing} not shown in:\n{body[:1500]}"


def shot(page, language: str, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"i18n-{language}-{name}.png"), full_page=True)


def _login(page, hub, name: str, password: str, next_path: str) -> None:
    page.goto(hub.url + "/hub/login?next=" + next_path.replace("/", "%2F"))
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("#login_submit")


@pytest.mark.parametrize("language", list(SHOWN))
def test_chromium_in_each_language(make_hub, playwright, language):
    ARTIFACTS.mkdir(exist_ok=True)
    hub = usage_hub(
        make_hub,
        **{"accelerators.mode": "exclusive", "accelerators.inventory": TWO_GPUS},
    )
    mlw(hub.site, "user", "add", "carol", "--password-stdin", input=CAROL_PW + "\n")
    start_hub(hub)
    shown = SHOWN[language]
    student, password = STUDENTS[language]
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=[*ARGS, f"--lang={language}"], headless=True
    )
    page = None
    console: list[str] = []  # the browser's console, shown when the test fails
    try:
        context = browser.new_context(locale=language, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        # sign-in and sign-up, before anyone is logged in
        page.goto(hub.url + "/hub/login")
        _shows(page, shown["login"], f"{language} login")
        shot(page, language, "login")
        page.goto(hub.url + "/hub/signup")
        _shows(page, shown["signup"], f"{language} signup")
        shot(page, language, "signup")
        # the admin's Accounts page
        _login(page, hub, "teacher", ADMIN_PW, "/hub/home")
        page.wait_for_url("**/hub/home")
        page.goto(hub.url + "/hub/accounts")
        _shows(page, shown["accounts"], f"{language} accounts")
        shot(page, language, "accounts")
        context.close()

        # a student: the spawn form, their JupyterLab, their usage page
        context = browser.new_context(locale=language, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        page.on("framenavigated", lambda frame: console.append(f"navigated: {frame.url}"))
        _login(page, hub, student, password, "/hub/spawn")
        page.wait_for_selector("#spawn_form")
        _shows(page, shown["spawn"], f"{language} spawn form")
        shot(page, language, "spawn")
        page.click("#spawn_form button[type=submit]")
        # JupyterLab's first load is slow on a busy machine (its scripts, then the settings)
        page.wait_for_url(f"**/user/{student}/lab**", wait_until="commit", timeout=180_000)
        where, texts = shown["lab"]
        page.wait_for_selector("#jp-MainMenu", timeout=240_000)
        page.wait_for_function(
            "([where, texts]) => texts.every(t => [...document.querySelectorAll(where)]"
            ".some(e => e.innerText.includes(t)))",
            arg=[where, texts],
            timeout=60_000,
        )
        seen = " ".join(page.locator(where).all_inner_texts())
        assert all(t in seen for t in texts), (language, seen)
        shot(page, language, "jupyterlab")
        # the server's defaults (the schema as the server gives it, its overrides applied): its
        # language, and no "official Jupyter news?" question
        base = f"{hub.url}/user/{student}/lab/api/settings/"
        locale = page.request.get(base + "@jupyterlab/translation-extension:plugin").json()
        assert locale["schema"]["properties"]["locale"]["default"] == LAB_LOCALE[language]
        assert "locale" not in locale["settings"]  # a student's own choice would go here, and win
        news = page.request.get(base + "@jupyterlab/apputils-extension:notification").json()
        assert news["schema"]["properties"]["fetchNews"]["default"] == "false"
        assert news["schema"]["properties"]["checkForUpdates"]["default"] is False
        assert page.get_by_text("official Jupyter news").count() == 0
        page.goto(hub.url + "/services/usage/me")
        page.wait_for_selector("[data-testid=my-quota]")
        _shows(page, shown["usage"], f"{language} usage")
        assert page.locator("html").get_attribute("lang") == language
        shot(page, language, "usage")
        context.close()
    except Exception:
        if page is not None and not page.is_closed():
            shot(page, language, "failed")  # what the browser showed when it went wrong
        print("--- browser console ---\n" + "\n".join(console[-80:]))
        user_log = hub.site / "logs" / "users" / f"{student}.log"
        if user_log.exists():
            print(f"--- {user_log} ---\n" + user_log.read_text(errors="replace")[-6000:])
        raise
    finally:
        browser.close()
    for name in ("login", "signup", "accounts", "spawn", "jupyterlab", "usage"):
        assert (ARTIFACTS / f"i18n-{language}-{name}.png").stat().st_size > 5_000
