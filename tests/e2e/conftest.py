"""Makes the Matrix client fixtures (matrix_fixtures.py) available to these tests.

Scenario tests under molecule/<scenario>/tests get them the same way (their conftest.py).
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

# pylint: disable=unused-import,wrong-import-position
from matrix_fixtures import (  # noqa: E402,F401
    homeserver_config, homeserver_url, http, register_user, resolve_test_names_to_localhost, tls_context)
