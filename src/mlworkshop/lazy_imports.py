"""rfc3987-syntax, imported when it is used instead of when jsonschema is: ~1.1 s off every start
of the hub and of the fork server.

jsonschema imports rfc3987_syntax at its own import, when it is installed (jupyter-events' extra
`format-nongpl` installs it), to check the optional "iri" string format; and rfc3987_syntax
compiles an Earley grammar with Lark as it is imported: 1.13 s of the 3.5 s before a restarted
hub's first log line on this 2-core machine (`python -X importtime -c "import jupyterhub.app"`).
The hub (through jupyter-events), the fork server and every cold-started server paid it, though
nothing they validate has that format.

defer_rfc3987_syntax() puts a stand-in in sys.modules whose is_valid_syntax (and any other name)
imports the real module at the first use, so jsonschema's "iri" checks behave exactly as before
(tests/unit/test_lazy_imports.py). Call it before jsonschema is imported.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types

NAME = "rfc3987_syntax"


def defer_rfc3987_syntax() -> None:
    """Idempotent; does nothing if rfc3987_syntax is already imported or not installed."""
    spec = None if NAME in sys.modules else importlib.util.find_spec(NAME)
    if spec is None:
        return
    stand_in = types.ModuleType(NAME, "stand-in: the real module is imported at first use")
    stand_in.__path__ = list(spec.submodule_search_locations or [])  # `import NAME.sub` works
    lock = threading.Lock()

    def real() -> types.ModuleType:
        with lock:
            if sys.modules.get(NAME) is stand_in:
                del sys.modules[NAME]
            return importlib.import_module(NAME)

    def is_valid_syntax(term: str, value: str) -> bool:
        return real().is_valid_syntax(term, value)

    def __getattr__(name: str):  # PEP 562: any other name, from the real module
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(real(), name)

    stand_in.is_valid_syntax = is_valid_syntax
    stand_in.__getattr__ = __getattr__
    sys.modules[NAME] = stand_in
