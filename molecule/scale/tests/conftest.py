"""The Matrix client fixtures shared by every scenario (tests/e2e/matrix_fixtures.py)."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "tests", "e2e"))

# pylint: disable=unused-import,wrong-import-position
from matrix_fixtures import (  # noqa: E402,F401
    homeserver_config, homeserver_url, http, register_user, resolve_test_names_to_localhost, tls_context)
