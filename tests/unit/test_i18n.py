"""Languages (mlworkshop/i18n.py, hub/i18n.py): which language a request gets, that the hub's
pages, the spawn form, refusals and the usage dashboards come out in it, dates and numbers the
reader's way, and the JupyterLab defaults a server is started with. Templates are rendered in
a Jinja environment built the way JupyterHub 6.1 builds its own (app.py init_tornado_settings),
with the extension hub/configure.py names.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from pathlib import Path

import jupyterhub
import pytest
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
from traitlets.config import Config

from mlworkshop.i18n import (
    LANGUAGES,
    _,
    current_language,
    format_date,
    format_number,
    negotiate,
    set_language,
    use_language,
)

HUB_TEMPLATES = Path(jupyterhub.__file__).parents[4] / "share" / "jupyterhub" / "templates"
OURS = Path(__file__).parents[2] / "src" / "mlworkshop" / "hub" / "templates"


# --- which language -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
        ("zh-TW,zh;q=0.9", "zh-TW"),
        ("zh-HK", "zh-TW"),
        ("zh-Hant-TW", "zh-TW"),
        ("zh-Hans", "zh-CN"),
        ("zh", "zh-CN"),
        ("en-US,en;q=0.9", "en"),
        ("fr-FR,zh-TW;q=0.5", "zh-TW"),  # the first we have, in the browser's order
        ("en;q=0.2,zh-CN;q=0.8", "zh-CN"),  # q values, not the order written
        ("zh-CN;q=0", "en"),  # q=0: not wanted
        ("de-DE", "en"),
        ("", "en"),
        (None, "en"),
        ("garbage;;;,,q=x", "en"),
    ],
)
def test_browser_language(header, expected):
    assert negotiate(header, "auto") == expected


def test_site_language_wins_over_the_browser():
    assert negotiate("en-US", "zh-CN") == "zh-CN"
    assert negotiate("zh-CN", "zh-TW") == "zh-TW"
    assert negotiate("zh-TW", "en") == "en"


def test_config_key_names_the_languages():
    from mlworkshop.config import MLWorkshopConfig

    assert MLWorkshopConfig().hub.language == "auto"
    assert MLWorkshopConfig.model_validate({"hub": {"language": "zh-TW"}}).hub.language == "zh-TW"
    with pytest.raises(ValueError):
        MLWorkshopConfig.model_validate({"hub": {"language": "fr"}})
    field = type(MLWorkshopConfig().hub).model_fields["language"]
    assert field.description and "auto" in field.description


# --- messages -------------------------------------------------------------------------------
def test_messages_in_each_language_and_english_without_one():
    assert _("Sign in") == "Sign in"  # no request: the CLI and the logs stay English
    with use_language("zh-CN"):
        assert _("Sign in") == "登录"
    with use_language("zh-TW"):
        assert _("Sign in") == "登入"
    with use_language("en"):
        assert _("Sign in") == "Sign in"
    assert current_language() == "en"


async def test_each_task_keeps_its_own_language():
    """Two requests at once (one task each, as tornado runs them): neither sees the other's
    language, also in the threads they start."""

    async def request(language: str) -> list[str]:
        set_language(language)
        seen = [_("Sign in")]
        await asyncio.sleep(0.01)  # the other request runs meanwhile
        seen.append(await asyncio.to_thread(_, "Sign in"))
        return seen

    cn, tw, en = await asyncio.gather(request("zh-CN"), request("zh-TW"), request("en"))
    assert cn == ["登录", "登录"] and tw == ["登入", "登入"] and en == ["Sign in", "Sign in"]
    assert current_language() == "en"


def test_numbers_and_dates_the_readers_way():
    day = dt.date(2026, 12, 1)
    with use_language("zh-CN"):
        assert format_date(day) == "2026年12月1日"
        assert format_number(1234.5) == "1234.50"
    with use_language("zh-TW"):
        assert format_date(day) == "2026年12月1日"
    with use_language("en"):
        assert format_date(day) == "Dec 1, 2026"
        assert format_number(None) == "—"


def test_refusals_from_python_are_translated():
    from mlworkshop.accelerators.allocator import Limit, OverLimit
    from mlworkshop.accounts.passwords import WeakPassword, check_password_rules
    from mlworkshop.names import BadUsername, normalize_username

    with use_language("zh-CN"):
        with pytest.raises(WeakPassword, match="密码至少需要 12 个字符"):
            check_password_rules("short", 12, False)
        with pytest.raises(BadUsername, match="用户名 '1abc' 不可用"):
            normalize_username("1abc")
        assert "不能使用加速卡" in str(OverLimit("alice", Limit(0, "quotas.default"), 0, 1))
    with use_language("zh-TW"):
        with pytest.raises(WeakPassword, match="密碼不能與使用者名稱相同"):
            check_password_rules("alice-alice", 8, False, "alice-alice")
    with pytest.raises(BadUsername, match="Username '1abc' is not allowed"):
        normalize_username("1abc")  # English outside a request (the CLI)


def test_quota_refusal_and_queue_message():
    from mlworkshop.usage.quotas import Limits, Used, spawn_refusal

    limits = Limits(gpu_hours_per_week=1.0, source="quotas.default")
    used = Used(gpu_hours=2.0)
    with use_language("zh-TW"):
        text = spawn_refusal(limits, used, 1)
    assert text.startswith("配額：") and "請啟動僅 CPU 的伺服器" in text
    assert spawn_refusal(limits, used, 1).startswith("Quota: ")


async def test_place_in_line_in_the_spawn_pages_language():
    """The progress events of a waiting start (hub/lifecycle.py), as the spawn page's event
    stream asks for them: in that request's language."""
    from types import SimpleNamespace

    from mlworkshop.hub.lifecycle import WorkshopSpawner, start_queue

    queue = start_queue(9173)  # a limit of its own: no other test's queue
    waiting = asyncio.get_running_loop().create_future()
    queue.waiting.append(waiting)
    spawner = SimpleNamespace(max_concurrent_starts=9173, _queue_ticket_state="waiting")
    try:
        with use_language("zh-CN"):
            events = WorkshopSpawner.progress(spawner)
            first = await events.__anext__()
            spawner._queue_ticket_state = "starting"
            second = await events.__anext__()
    finally:
        queue.waiting.remove(waiting)
    assert (
        first["message"]
        == "很多同学正在同时启动：你的服务器正在排队（1 人等待，每次同时启动 9173 台）"
    )
    assert second["message"] == "正在启动你的 JupyterLab"


# --- the hub's pages, rendered as JupyterHub renders them -------------------------------------
@pytest.fixture
def hub_env():
    """The environment of JupyterHub 6.1's init_tornado_settings, with hub.language's options."""
    from mlworkshop.config import MLWorkshopConfig
    from mlworkshop.hub.configure import apply_language

    c = Config()
    apply_language(c, MLWorkshopConfig(), None)
    options = dict(autoescape=True)
    options.update(c.JupyterHub.jinja_environment_options)
    loader = ChoiceLoader(
        [
            PrefixLoader({"templates": FileSystemLoader([str(HUB_TEMPLATES)])}, "/"),
            FileSystemLoader([str(OURS), str(HUB_TEMPLATES)]),
        ]
    )
    return Environment(loader=loader, **options)


def _ns(**extra):
    """What JupyterHub's template_namespace passes (handlers/base.py)."""
    ns = dict(
        base_url="/hub/",
        prefix="/",
        user=None,
        login_url="/hub/login",
        login_service="",
        logout_url="/hub/logout",
        static_url=lambda path, **kw: "/hub/static/" + path,
        version_hash="",
        services=[],
        parsed_scopes=set(),
        expanded_scopes=set(),
        xsrf="x",
        xsrf_token="x",
        authenticator_login_url="/hub/login",
        authenticator=type("A", (), {"request_otp": False})(),
        username="",
        login_error=None,
    )
    ns.update(extra)
    return ns


PAGES = {
    # page: (namespace, what zh-CN shows, what zh-TW shows, what en shows)
    "login.html": (
        {"mlw_signup": True},
        ["登录", "用户名：", "还没有账户？", "学生指南"],
        ["登入", "使用者名稱："],
        ["Sign in", "No account yet?"],
    ),
    "signup.html": (
        {"message": None, "error": None},
        ["注册", "创建账户"],
        ["註冊", "建立帳戶"],
        ["Create account"],
    ),
    "change-password.html": (
        {"message": None, "error": None},
        ["修改密码", "当前密码"],
        ["變更密碼"],
        ["Current password"],
    ),
    "guide.html": (
        {},
        ["学生指南", "提交作业", "submissions/"],
        ["學生指南", "繳交作業"],
        ["Student guide", "Hand in"],
    ),
    "spawn.html": (
        {"url": "/hub/spawn", "spawner_options_form": "", "for_user": None},
        ["服务器选项", "启动"],
        ["伺服器選項", "啟動"],
        ["Server Options", "Start"],
    ),
    "home.html": (
        {
            "default_server": type("S", (), {"active": True})(),
            "url": "/user/a/",
            "allow_named_servers": False,
        },
        ["停止我的服务器", "我的服务器"],
        ["停止我的伺服器"],
        ["Stop My Server"],
    ),
    "spawn_pending.html": (
        {"progress_url": "/p"},
        ["你的服务器正在启动。"],
        ["你的伺服器正在啟動。"],
        ["Your server is starting up."],
    ),
}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_hub_pages_in_three_languages(hub_env, page):
    ns, cn, tw, en = PAGES[page]
    template = hub_env.get_template(page)
    for language, expected in (("zh-CN", cn), ("zh-TW", tw), ("en", en)):
        with use_language(language):
            html = template.render(**_ns(**ns))
        for text in expected:
            assert text in html, (page, language, text)


def test_login_page_offers_signup_only_where_there_is_one(hub_env):
    """Only native accounts have /hub/signup: under oidc, github, azuread, ldap or header the
    link led to a 404 (hub/configure.py apply_templates sets mlw_signup)."""
    from mlworkshop.config import MLWorkshopConfig
    from mlworkshop.hub.configure import apply_templates

    for method, offered in (("native", True), ("ldap", False), ("oidc", False)):
        cfg = MLWorkshopConfig.model_validate(
            {"auth": {"method": method}, "usage": {"enabled": False}}
        )
        c = Config()
        apply_templates(c, cfg, None)
        html = hub_env.get_template("login.html").render(**_ns(**c.JupyterHub.template_vars))
        assert ('href="/hub/signup"' in html) is offered, method
        assert 'href="/hub/guide"' in html  # the student guide stays


def test_accounts_page_and_navigation(hub_env):
    from types import SimpleNamespace

    account = SimpleNamespace(
        username="alice", approved=False, is_admin=False, created=dt.datetime(2026, 12, 1, 9, 30)
    )
    user = SimpleNamespace(name="teacher", spawner=SimpleNamespace(options_form=""))
    ns = _ns(user=user, accounts=[account], message=None)
    ns["parsed_scopes"] = {"admin:users", "admin-ui"}
    with use_language("zh-CN"):
        html = hub_env.get_template("accounts.html").render(**ns)
    assert "等待批准" in html and "批准" in html and "重置密码" in html
    assert "2026年12月1日" in html  # the created date, the reader's way
    assert ">账户</a>" in html and ">用量</a>" in html and ">退出</a>" in html
    assert 'href="/hub/admin">管理</a>' in html  # JupyterHub's own nav items too
    with use_language("zh-TW"):
        html = hub_env.get_template("accounts.html").render(**ns)
    assert "等待核准" in html and ">帳戶</a>" in html


def test_translated_text_is_still_escaped(hub_env):
    """A translation is markup only where the msgid is (trans blocks); values stay escaped."""
    with use_language("zh-CN"):
        html = hub_env.get_template("signup.html").render(
            **_ns(message=None, error="<script>x</script>", username='"><b>')
        )
    assert "<script>x" not in html and "&lt;script&gt;" in html and '"><b>' not in html


def test_spawn_form_and_profiles_in_the_readers_language():
    from mlworkshop.accelerators.inventory import Device
    from mlworkshop.accelerators.profiles import profiles_for
    from mlworkshop.config.accelerators import AcceleratorsConfig
    from mlworkshop.hub.spawn_form import render_options_form

    gpus = [Device("nvidia", i, f"GPU-{i}", "A100", 81920) for i in range(2)]
    cfg = AcceleratorsConfig(mode="exclusive")
    with use_language("zh-CN"):
        form = render_options_form(profiles_for("alice", [], False, cfg, gpus), ["note"])
    assert "为这台服务器选择资源" in form and "仅 CPU" in form and "无加速卡" in form
    with use_language("zh-TW"):
        form = render_options_form(profiles_for("alice", [], False, cfg, gpus))
    assert "為這台伺服器選擇資源" in form and "僅 CPU" in form and "每個 80 GiB" in form
    form = render_options_form(profiles_for("alice", [], False, cfg, gpus))
    assert "Choose the resources for this server:" in form and "CPU only" in form


# --- the usage dashboards -------------------------------------------------------------------
def test_usage_page_in_chinese_with_dates_the_readers_way():
    from mlworkshop.usage import dashboard

    args = dict(
        prefix="/services/usage/",
        who="alice",
        admin=False,
        limits={
            "source": "quotas.default",
            "gpu_hours_per_week": 10.0,
            "cpu_hours_per_week": None,
            "max_servers": None,
            "max_devices": None,
        },
        used={"gpu_hours": 1.5, "cpu_hours": 2.0, "servers": 1, "devices": 0},
        remaining={"gpu_hours": 8.5, "cpu_hours": None, "servers": None, "devices": None},
        week_row=None,
        running=[
            {
                "server": "",
                "profile": "cpu",
                "devices": [],
                "start": "2026-12-01T09:30:00Z",
                "cpu_percent": 3.0,
                "mem_mib": 200.0,
            }
        ],
        currency="CNY",
        verdict={"state": "ok", "message": ""},
    )
    with use_language("zh-CN"):
        html = dashboard.user_page(**args)
    assert '<html lang="zh-CN">' in html and "我的配额" in html and "本周 CPU 小时" in html
    assert "2026年12月1日" in html and "不限" in html
    with use_language("zh-TW"):
        assert "我的配額" in dashboard.user_page(**args)
    html = dashboard.user_page(**args)
    assert "My quota" in html and "Dec 1, 2026" in html


# --- hub.language in the hub's config and in each server's JupyterLab --------------------------
def test_configure_maps_the_language():
    from mlworkshop.config import MLWorkshopConfig
    from mlworkshop.hub.configure import apply_language
    from mlworkshop.hub.i18n import SETTING

    c = Config()
    c.JupyterHub.tornado_settings = {"xsrf_cookie_kwargs": {"secure": True}}  # kept
    apply_language(c, MLWorkshopConfig.model_validate({"hub": {"language": "zh-TW"}}), None)
    from jupyterhub.app import JupyterHub

    app = JupyterHub(config=c)
    assert app.jinja_environment_options["extensions"] == ["mlworkshop.hub.i18n.HubI18n"]
    assert app.tornado_settings == {"xsrf_cookie_kwargs": {"secure": True}, SETTING: "zh-TW"}
    assert c.WorkshopSpawner.language == "zh-TW"


@pytest.mark.parametrize(
    ("site", "request_language", "lab"),
    [
        ("zh-CN", "en", "zh_CN"),
        ("zh-TW", "zh-CN", "zh_TW"),
        ("en", "zh-CN", "en"),
        ("auto", "zh-TW", "zh_TW"),  # auto: the browser that starts the server
        ("auto", "en", "en"),
    ],
)
def test_jupyterlab_default_language(site, request_language, lab):
    from jupyter_server.config_manager import BaseJSONConfigManager

    from mlworkshop.hub.configure import SERVER_CONFIG
    from mlworkshop.hub.i18n import LAB_LOCALE_ENV, lab_language_env

    with use_language(request_language):
        env = lab_language_env(site, SERVER_CONFIG)
    assert env[LAB_LOCALE_ENV] == lab
    overrides = {}
    # what jupyterlab_server reads from JUPYTER_CONFIG_PATH (earlier entries win)
    for path in reversed(env["JUPYTER_CONFIG_PATH"].split(os.pathsep)):
        found = BaseJSONConfigManager(config_dir=os.path.join(path, "labconfig")).get(
            "default_setting_overrides"
        )
        for plugin, values in found.items():
            overrides.setdefault(plugin, {}).update(values)
    assert overrides["@jupyterlab/translation-extension:plugin"] == {"locale": lab}
    # the "official Jupyter news?" question is never asked (offline class rooms)
    assert overrides["@jupyterlab/apputils-extension:notification"] == {
        "fetchNews": "false",
        "checkForUpdates": False,
    }


def test_server_side_of_jupyterlab_follows_the_locale(tmp_path):
    """The server config file sets the locale jupyterlab_server translates menus into while a
    student has chosen none (it read the process's locale once, in the fork server)."""
    import subprocess
    import sys

    from mlworkshop.hub.configure import SERVER_CONFIG

    script = (
        "import os, runpy\n"
        "runpy.run_path(os.path.join(os.environ['CFG'], 'jupyter_server_config.py'),"
        " init_globals={'get_config': lambda: __import__('traitlets.config').config.Config()})\n"
        "from jupyterlab_server import settings_utils, translations_handler\n"
        "print(settings_utils.SYS_LOCALE, translations_handler.SYS_LOCALE)\n"
    )
    env = {
        **os.environ,
        "CFG": SERVER_CONFIG,
        "MLWORKSHOP_LAB_LOCALE": "zh_TW",
        "HOME": str(tmp_path),
    }
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["zh_TW", "zh_TW"], out.stderr


def test_language_packs_are_installed_with_the_server():
    from jupyterlab_server.translation_utils import get_language_packs

    packs, _message = get_language_packs()
    assert {"zh_CN", "zh_TW"} <= set(packs)
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert "jupyterlab-language-pack-zh-CN" in pyproject
    assert "jupyterlab-language-pack-zh-TW" in pyproject


def test_override_files_are_json():
    from mlworkshop.hub.i18n import LAB_LANGUAGES

    for language in LANGUAGES:
        folder = LAB_LANGUAGES / language.replace("-", "_") / "labconfig"
        json.loads((folder / "default_setting_overrides.json").read_text())
