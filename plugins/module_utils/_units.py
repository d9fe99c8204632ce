# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to this collection: may change without notice.

"""Human sizes and ages for module options: '10M' -> bytes, '30d' -> milliseconds.

Sizes use binary units throughout (1K = 1024 bytes): that is how Synapse's own config reads
sizes such as max_upload_size, so '10M' means the same here as in homeserver.yaml.
"""

from __future__ import annotations

import math
import re

SIZE_FORMAT = ("a number of bytes, or a number with a unit K, M, G or T (binary: 1K = 1024 bytes; "
               "KB/KiB, MB/MiB... mean the same), e.g. 512K, 10M, 1.5G")
AGE_FORMAT = "a number with a unit s, m, h, d or w (seconds, minutes, hours, days, weeks), e.g. 45s, 90m, 12h, 30d, 2w"

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|b)?\s*$", re.IGNORECASE)
_SIZE_FACTORS = {None: 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_AGE_MS = {"s": 1000, "m": 60 * 1000, "h": 3600 * 1000, "d": 86400 * 1000, "w": 7 * 86400 * 1000}


def parse_size(value, option):
    """Bytes in a size such as 10M, 1.5G or 100; ValueError naming the option otherwise."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.match(str(value)) if isinstance(value, (str, int, float)) else None
    if not match:
        raise ValueError("%s: cannot read %r as a size; use %s" % (option, value, SIZE_FORMAT))
    number, unit = match.groups()
    return _whole(float(number) * _SIZE_FACTORS[unit.lower() if unit else None], value, option)


def parse_age(value, option):
    """Milliseconds in an age such as 30d or 12h; ValueError naming the option otherwise."""
    match = _AGE.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError("%s: cannot read %r as an age; use %s" % (option, value, AGE_FORMAT))
    number, unit = match.groups()
    return _whole(float(number) * _AGE_MS[unit], value, option)


def _whole(number, value, option):
    """`number` as an int; ValueError naming the option when it is too big to be one (infinite)."""
    if not math.isfinite(number):
        raise ValueError("%s: %r is too big" % (option, value))
    return int(number)
