from __future__ import annotations

import pytest

from ansible_collections.switchboard.matrix.plugins.module_utils._units import parse_age, parse_size


@pytest.mark.parametrize("text, size", [
    ("100", 100), (100, 100), ("0", 0), ("100B", 100), ("512K", 512 * 1024), ("10M", 10 * 1024 ** 2),
    ("10m", 10 * 1024 ** 2), ("10MiB", 10 * 1024 ** 2), ("10MB", 10 * 1024 ** 2), ("1.5G", 3 * 1024 ** 3 // 2),
    ("2T", 2 * 1024 ** 4), (" 3 k ", 3072),
])
def test_sizes(text, size):
    assert parse_size(text, "larger_than") == size


@pytest.mark.parametrize("text", ["", "M", "-1", "10X", "1,5G", "10 M B", "ten", None, True, -5, "1e3"])
def test_bad_sizes_name_option_and_format(text):
    with pytest.raises(ValueError) as err:
        parse_size(text, "larger_than")
    assert str(err.value).startswith("larger_than: ")
    assert "512K, 10M, 1.5G" in str(err.value)


@pytest.mark.parametrize("text, ms", [
    ("45s", 45000), ("90m", 90 * 60000), ("12h", 12 * 3600000), ("30d", 30 * 86400000),
    ("2w", 14 * 86400000), ("1.5h", 5400000),
])
def test_ages(text, ms):
    assert parse_age(text, "older_than") == ms


@pytest.mark.parametrize("text", ["30", "30D", "d", "-1d", "1 month", "30days", 30, None, ""])
def test_bad_ages_name_option_and_format(text):
    with pytest.raises(ValueError) as err:
        parse_age(text, "older_than")
    assert str(err.value).startswith("older_than: ")
    assert "30d" in str(err.value)
