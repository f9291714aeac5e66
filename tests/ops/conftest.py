from __future__ import annotations

from tests.integration.conftest import make_hub  # noqa: F401  (the real-hub factory)
