"""Every message has its Chinese translations: the messages are extracted from the templates and
the Python sources here, as `scripts/i18n.sh` (pybabel extract) does with the same mapping file,
and each must have a zh-CN and a zh-TW translation that keeps its placeholders.

Two more checks keep text from slipping past extraction: a template's visible English outside
`{% trans %}` / `_()` (a page someone adds without marking it), and `_()` inside an f-string
(pybabel cannot see it there, so it would never reach the catalogs).
"""

from __future__ import annotations

import io
import re
import tokenize
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "src" / "mlworkshop"
LOCALE = PACKAGE / "locale"
TEMPLATES = PACKAGE / "hub" / "templates"
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
PLACEHOLDER = re.compile(r"\{[a-z_]+\}|%\([a-z_]+\)s")


def extract() -> dict[str | tuple[str, ...], str]:
    """msgid -> where it is, from every file babel.cfg maps (as `pybabel extract -F` does)."""
    with open(LOCALE / "babel.cfg") as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    found = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS
    ):
        key = message if isinstance(message, str) else tuple(m for m in message if m)
        found.setdefault(key, f"{filename}:{lineno}")
    return found


def catalog(language: str) -> dict:
    with open(LOCALE / language / "LC_MESSAGES" / "mlworkshop.po", "rb") as handle:
        po = read_po(handle)
    return {(m.id if isinstance(m.id, str) else tuple(m.id)): m for m in po if m.id}


@pytest.fixture(scope="module")
def messages():
    found = extract()
    assert len(found) > 100, "extraction found almost nothing: is babel.cfg's mapping right?"
    return found


@pytest.mark.parametrize("language", ["zh_CN", "zh_TW"])
def test_every_message_is_translated(messages, language):
    translated = catalog(language)
    missing, broken = [], []
    for msgid, where in messages.items():
        entry = translated.get(msgid)
        strings = (
            (entry.string if isinstance(entry.string, tuple) else (entry.string,)) if entry else ()
        )
        if not entry or entry.fuzzy or not all(strings):
            missing.append(f"{where}: {msgid!r}")
            continue
        wanted = sorted(set(PLACEHOLDER.findall(msgid if isinstance(msgid, str) else msgid[-1])))
        for text in strings:
            if sorted(set(PLACEHOLDER.findall(text))) != wanted:
                broken.append(f"{where}: {msgid!r} -> {text!r} (placeholders {wanted})")
    assert not missing, (
        f"{len(missing)} message(s) without a {language} translation (run scripts/i18n.sh, then "
        f"translate them in src/mlworkshop/locale/{language}/LC_MESSAGES/mlworkshop.po):\n"
        + "\n".join(missing)
    )
    assert not broken, "translations that lose or add a placeholder:\n" + "\n".join(broken)


@pytest.mark.parametrize("language", ["zh_CN", "zh_TW"])
def test_catalogs_compile(language):
    from mlworkshop.i18n import translations

    translations.cache_clear()
    compiled = translations(language.replace("_", "-"))
    assert compiled.gettext("Sign in") != "Sign in"


# --- text that extraction would miss ----------------------------------------------------------
# Text in a template that is not for people to read: code, entities, separators, names.
NOT_WORDS = re.compile(r"^[\s\W\d_]*$|^(JupyterHub|JupyterLab|API|UTC|GPU|NPU|CPU|mlworkshop)$")
SHOWN_ATTRIBUTES = {"title", "placeholder", "alt", "aria-label", "value"}
JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
HELD = re.compile(r"\{%-?\s*trans\b.*?\{%-?\s*endtrans\s*-?%\}|\{#.*?#\}", re.S)


class _Visible(HTMLParser):
    """Text and shown attributes of a template whose Jinja parts were replaced by a marker."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []
        self.hidden = 0  # inside <script> / <style>: not shown to anyone

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.hidden += 1
        for name, value in attrs:
            if name in SHOWN_ATTRIBUTES and value:
                self._check(value, f"attribute {name}")

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self.hidden = max(0, self.hidden - 1)

    def handle_data(self, data):
        if not self.hidden:
            self._check(data, "text")

    def _check(self, text: str, what: str):
        words = " ".join(text.replace("\x00", " ").split())
        if re.search(r"[A-Za-z]{2,}", words) and not NOT_WORDS.match(words):
            self.found.append(f"{what} {words[:70]!r}")


def _text_outside_trans(template: Path) -> list[str]:
    """The visible text of a template that no {% trans %} or _() holds: trans blocks and
    comments removed, every other Jinja part (a value, a tag, _()) replaced by a marker."""
    source = JINJA.sub("\x00", HELD.sub("", template.read_text()))
    parser = _Visible()
    parser.feed(source)
    parser.close()
    return [f"{template.name}: {found}" for found in parser.found]


def test_templates_have_no_text_outside_trans():
    untranslated = []
    for template in sorted(TEMPLATES.glob("*.html")):
        untranslated += _text_outside_trans(template)
    assert not untranslated, (
        "visible English in the hub's templates that no {% trans %} / {{ _() }} holds (it would "
        "stay English for every reader):\n" + "\n".join(untranslated)
    )


def test_no_gettext_inside_f_strings():
    """pybabel does not look inside f-strings: `f"{_('x')}"` would never reach the catalogs."""
    hidden = []
    for source in sorted(PACKAGE.rglob("*.py")):
        text = source.read_text()
        if "_(" not in text and "gettext(" not in text:
            continue
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.STRING and re.match(r"^[rbRB]*[fF]", token.string):
                if re.search(r"\b(?:_|gettext|ngettext)\(", token.string):
                    hidden.append(f"{source.relative_to(ROOT)}:{token.start[0]}")
    assert not hidden, "_() inside an f-string (take it out into a variable):\n" + "\n".join(hidden)
