"""Accept-Encoding as RFC 9110 reads it: weights, case, the wildcard, bad members."""

from __future__ import annotations

import pytest

from collector.web_encoding import accepts_gzip


@pytest.mark.parametrize(
    ("header", "gzipped"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("GZip", True),
        ("x-gzip", True),
        ("gzip;q=1", True),
        ("gzip;q=1.000", True),
        ("gzip ; Q=0.001", True),
        ("deflate, gzip;q=0.5, br", True),
        ("gzip;q=0", False),
        ("gzip;q=0.000", False),
        ("gzip;q=0, *", False),  # named beats the wildcard
        ("*", True),
        ("*;q=0", False),
        ("identity", False),
        ("notgzip", False),
        ("gzipped", False),
        ("gzip;q=2", False),  # not a qvalue: the member is ignored
        ("gzip;q=0.0001", False),
        ("gzip;level=9", False),
        ("br, gzip;q=abc, deflate", False),
        ("br , gzip", True),
    ],
)
def test_gzip_is_accepted_by_weight(header: str | None, gzipped: bool) -> None:
    assert accepts_gzip(header) is gzipped
