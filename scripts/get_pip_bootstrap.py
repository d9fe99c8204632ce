"""Stand-in for the pip bootstrap script ansible-test downloads (unreachable here).

ansible-test runs this file with pip-install arguments (e.g. `pip==24.2 --no-wheel`).
It installs them with the pip wheel that CPython's ensurepip bundles, so no download
of the script itself is needed; the packages still come from the package index.
"""
from __future__ import annotations

import glob
import os
import runpy
import sys
import tempfile
import zipfile

import ensurepip

bundled = glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), "_bundled", "pip-*.whl"))
if not bundled:
    sys.exit("ensurepip has no bundled pip wheel")
unpacked = tempfile.mkdtemp(prefix="pip-bootstrap-")
with zipfile.ZipFile(bundled[0]) as wheel:
    wheel.extractall(unpacked)
sys.path.insert(0, unpacked)
args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.argv = ["pip", "install", *args]
runpy.run_module("pip", run_name="__main__", alter_sys=True)
