"""The shared end-to-end helpers (tests/e2e): names resolved to 127.0.0.1 in this process only."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "tests", "e2e"))

# pylint: disable=unused-import,wrong-import-position
from matrix_fixtures import resolve_test_names_to_localhost  # noqa: E402,F401
