"""Languages of the pages people read: simplified Chinese, traditional Chinese and English.

Messages are written in English in the code and the templates (`_("...")`, `{% trans %}`) and
translated through gettext catalogs (`locale/<lang>/LC_MESSAGES/mlworkshop.po`, kept with
`pybabel`; README's developer's guide says how). The catalogs are compiled in memory when a
process first needs one, from the committed .po files: no .mo file to forget to rebuild, and the
package folder may be read-only (a root install read by the usage service's own account).

Which language a message comes out in is the request's (`use_language`, set per request by the
hub, hub/i18n.py, and by the usage service): a context variable, so every coroutine and
`asyncio.to_thread` call of one request sees its own language. With none set (the CLI, logs,
tests that call a function directly) messages stay English, so a log line reads the same for
whoever caused it.

This module knows nothing of JupyterHub: the usage service (a process of its own) uses it too.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import gettext as _gettext
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from babel import Locale, dates, numbers
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "mlworkshop"
# What hub.language may name besides auto, in the form browsers send (BCP 47).
LANGUAGES = ("zh-CN", "zh-TW", "en")
SOURCE_LANGUAGE = "en"  # the language of the msgids: it needs no catalog
# Chinese tags browsers send that name a script or region rather than zh-CN / zh-TW.
_CHINESE = {
    "zh": "zh-CN",
    "zh-cn": "zh-CN",
    "zh-sg": "zh-CN",
    "zh-hans": "zh-CN",
    "zh-my": "zh-CN",
    "zh-tw": "zh-TW",
    "zh-hk": "zh-TW",
    "zh-mo": "zh-TW",
    "zh-hant": "zh-TW",
}

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "mlworkshop_language", default=None
)


def catalog_dir(language: str) -> str:
    """The gettext folder name of a language: zh-CN -> zh_CN."""
    return language.replace("-", "_")


def _parse_accept_language(header: str) -> list[tuple[str, float]]:
    """Accept-Language's tags with their q values, best first (ties keep the header's order)."""
    tags = []
    for position, part in enumerate(header.split(",")):
        fields = part.strip().split(";")
        tag = fields[0].strip().lower()
        if not tag or len(tag) > 35:
            continue
        q = 1.0
        for param in fields[1:]:
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            tags.append((tag, q, position))
    tags.sort(key=lambda t: (-t[1], t[2]))
    return [(tag, q) for tag, q, _ in tags]


def _match(tag: str) -> str | None:
    tag = tag.replace("_", "-").lower()
    if tag in _CHINESE:
        return _CHINESE[tag]
    parts = tag.split("-")
    if parts[0] == "zh":
        # zh-Hans-CN, zh-Hant-TW ...: the script decides, then the region
        for part in parts[1:]:
            if f"zh-{part}" in _CHINESE:
                return _CHINESE[f"zh-{part}"]
        return "zh-CN"
    if parts[0] == "en":
        return "en"
    return None


def negotiate(accept_language: str | None, site_default: str = "auto") -> str:
    """The language of a page: the site's (hub.language) when it names one, else the first of the
    browser's that we have, else English (a browser that names none of ours reads English best)."""
    if site_default in LANGUAGES:
        return site_default
    for tag, _q in _parse_accept_language(accept_language or ""):
        found = _match(tag)
        if found:
            return found
    return SOURCE_LANGUAGE


def normalize(language: str | None) -> str:
    """A language as we name it (zh_cn, zh-Hans -> zh-CN); unknown or empty: English."""
    return (_match(language) if language else None) or SOURCE_LANGUAGE


@functools.cache
def translations(language: str) -> _gettext.NullTranslations:
    """The compiled catalog of a language (English, or one without a catalog: the msgids)."""
    if language == SOURCE_LANGUAGE:
        return _gettext.NullTranslations()
    po = LOCALE_DIR / catalog_dir(language) / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not po.is_file():
        return _gettext.NullTranslations()
    with po.open("rb") as handle:
        catalog = read_po(handle, locale=catalog_dir(language), domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)  # fuzzy entries are left out, as msgfmt does
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def current_language() -> str:
    return _current.get() or SOURCE_LANGUAGE


def set_language(language: str) -> None:
    """The language of the rest of this request (its task and the threads it starts)."""
    _current.set(normalize(language))


@contextmanager
def use_language(language: str) -> Iterator[None]:
    token = _current.set(normalize(language))
    try:
        yield
    finally:
        _current.reset(token)


def gettext(message: str) -> str:
    return translations(current_language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current_language()).ngettext(singular, plural, n)


_ = gettext


def N_(message: str) -> str:
    """Marks a message for the catalogs where it is defined; translate it with _() where shown."""
    return message


def babel_locale() -> Locale:
    return Locale.parse(catalog_dir(current_language()))


def format_number(value: float | None, digits: int = 2) -> str:
    """A number as the reader's locale writes it (its decimal sign), with `digits` decimals and
    no grouping (a table's column and a test read 1000.00 alike); None: a dash."""
    if value is None:
        return "—"
    pattern = "0" + ("." + "0" * digits if digits > 0 else "")
    return numbers.format_decimal(value, format=pattern, locale=babel_locale())


def format_date(value: dt.date | dt.datetime) -> str:
    """A date the reader's way (2026年12月1日 / Dec 1, 2026)."""
    return dates.format_date(value, format="medium", locale=babel_locale())


def format_month_day(value: dt.date | dt.datetime) -> str:
    """A day of the year the reader's way (Dec 1 / 12月1日)."""
    return dates.format_skeleton("MMMd", value, locale=babel_locale())


def format_datetime(value: dt.datetime) -> str:
    """A date and time (UTC, as stored) the reader's way."""
    return dates.format_datetime(value, format="medium", tzinfo=dt.UTC, locale=babel_locale())


def install_jinja(environment) -> None:
    """`{% trans %}`, `_()` and the number/date filters in a Jinja environment that has the
    jinja2.ext.i18n extension; the language is looked up at each call, not at install."""
    environment.install_gettext_callables(gettext, ngettext, newstyle=True)
    environment.policies["ext.i18n.trimmed"] = True
    environment.filters.setdefault("number", format_number)
    environment.filters.setdefault("date", format_date)
    environment.filters.setdefault("datetime", format_datetime)
    environment.globals.setdefault("current_language", current_language)
