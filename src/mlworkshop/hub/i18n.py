"""The hub's pages and messages in the reader's language (mlworkshop/i18n.py has the catalogs).

JupyterHub 6.1 has no translations of its own: it builds its Jinja environments without the i18n
extension and renders in English. `c.JupyterHub.jinja_environment_options` names `HubI18n`
(hub/configure.py apply_language), so both of its environments (the async one for pages, the
sync one for error pages) understand `{% trans %}` and `_()`.

Each request's language is set before its handler runs: JupyterHub offers no per-request hook, so
`HubI18n` wraps `BaseHandler.prepare` once (every page and API handler of the hub, ours too,
calls it first). It is a context variable, so what one request's task starts (the spawn, its
progress events, a refusal's `jupyterhub_message`, `asyncio.to_thread`) speaks the same language,
and nothing leaks between requests: tornado runs each request in a task of its own.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from jinja2.ext import InternationalizationExtension

from ..i18n import catalog_dir, current_language, install_jinja, negotiate, set_language

SETTING = "mlworkshop_language"  # tornado setting: hub.language (auto | zh-CN | zh-TW | en)
# One Jupyter config folder per language, each only a labconfig/default_setting_overrides.json
# naming JupyterLab's locale: a default, so a student's own choice (Settings > Language) wins.
LAB_LANGUAGES = Path(__file__).parent / "server_config" / "languages"


def request_language(handler) -> str:
    """The language of one hub request: hub.language, or the browser's Accept-Language."""
    return negotiate(
        handler.request.headers.get("Accept-Language"), handler.settings.get(SETTING, "auto")
    )


LAB_LOCALE_ENV = "MLWORKSHOP_LAB_LOCALE"  # read by server_config/jupyter_server_config.py


def lab_locale(site_language: str) -> str:
    """JupyterLab's locale for a new server: hub.language, or with auto the language of the
    request that starts it (the student's browser): zh_CN, zh_TW or en."""
    return catalog_dir(site_language if site_language != "auto" else current_language())


def lab_language_env(site_language: str, config_path: str) -> dict[str, str]:
    """What a new server's environment needs for its JupyterLab to speak that language by
    default: the locale for the server side (menus, settings) and, first on JUPYTER_CONFIG_PATH,
    the folder whose default_setting_overrides.json names it for the browser side."""
    locale = lab_locale(site_language)
    folder = str(LAB_LANGUAGES / locale)
    return {
        LAB_LOCALE_ENV: locale,
        "JUPYTER_CONFIG_PATH": os.pathsep.join([folder, config_path]) if config_path else folder,
    }


def install_request_language() -> None:
    """Every hub handler sets its request's language before it does anything else (once)."""
    from jupyterhub.handlers.base import BaseHandler

    prepare = BaseHandler.prepare
    if getattr(prepare, "_mlworkshop_language", False):
        return

    @functools.wraps(prepare)
    async def prepare_in_language(self, *args, **kwargs):
        set_language(request_language(self))
        return await prepare(self, *args, **kwargs)

    prepare_in_language._mlworkshop_language = True
    BaseHandler.prepare = prepare_in_language


class HubI18n(InternationalizationExtension):
    """jinja2.ext.i18n with mlworkshop's catalogs installed, for JupyterHub's environments (it
    makes them itself, so the callables are installed here, when it adds the extension)."""

    def __init__(self, environment):
        super().__init__(environment)
        install_jinja(environment)
        install_request_language()
