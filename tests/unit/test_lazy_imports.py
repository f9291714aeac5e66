"""mlworkshop/lazy_imports.py: jsonschema imported without compiling rfc3987-syntax's grammar, and
its "iri" format checks answering exactly as before. Each case runs in a fresh interpreter (the
deferral changes sys.modules)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("rfc3987_syntax") is None, reason="rfc3987-syntax is not installed"
)

DEFER = "from mlworkshop.lazy_imports import defer_rfc3987_syntax; defer_rfc3987_syntax()\n"

CHECK_IRIS = """
import json, jsonschema
values = ["http://例子.测试/路径?q=1", "https://example.org/a b", "not an iri", "mailto:a@b.cn",
          "//relative/ref", "http://[::1]:8000/x"]
out = {}
for fmt in ("iri", "iri-reference"):
    for value in values:
        try:
            jsonschema.validate(value, {"type": "string", "format": fmt},
                                format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
            out[fmt + " " + value] = True
        except jsonschema.ValidationError:
            out[fmt + " " + value] = False
print(json.dumps(out, sort_keys=True))
"""


def python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_jsonschema_is_imported_without_compiling_the_grammar():
    assert python(DEFER + "import jsonschema, sys; print('lark' in sys.modules)") == "False"


def test_without_the_deferral_jsonschema_compiles_it():
    """The cost the deferral takes away is real (else the test above could not fail)."""
    assert python("import jsonschema, sys; print('lark' in sys.modules)") == "True"


def test_iri_checks_answer_as_before():
    deferred = json.loads(python(DEFER + CHECK_IRIS))
    plain = json.loads(python(CHECK_IRIS))
    assert deferred == plain
    assert True in plain.values() and False in plain.values()  # both answers were exercised


def test_the_real_module_and_its_submodules_are_there_when_asked_for():
    code = DEFER + (
        "import rfc3987_syntax, rfc3987_syntax.syntax_helpers as helpers, sys\n"
        "print(rfc3987_syntax.is_valid_syntax('iri', 'http://a/b'), helpers.parse is not None,\n"
        "      sys.modules['rfc3987_syntax'].__file__.endswith('__init__.py'))"
    )
    assert python(code) == "True True True"


def test_deferring_twice_or_after_the_import_changes_nothing():
    code = (
        "import rfc3987_syntax, sys\n" + DEFER + "defer_rfc3987_syntax()\n"
        "print(sys.modules['rfc3987_syntax'] is rfc3987_syntax)"
    )
    assert python(code) == "True"
