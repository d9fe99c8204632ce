"""Make `ansible_collections.switchboard.matrix` importable when pytest runs from a checkout.

ansible-test runs these tests from a real ansible_collections/ tree, where the import
already works; from a checkout, collections/ holds a symlink back to the repository root.
"""
from __future__ import annotations

import os
import sys

try:
    import ansible_collections.switchboard.matrix  # noqa: F401  pylint: disable=unused-import
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "collections"))
