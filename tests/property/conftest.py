"""Hypothesis settings shared by the property tests.

Each test sets its own `max_examples`, sized so the whole directory runs in
about 15 s on a busy 2-core machine; `PETRA_PROPERTY_SCALE=10` multiplies
every count (for a longer hunt before a release). Run with
`--hypothesis-show-statistics` to see how many cases each test tried.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, settings

settings.register_profile(
    "petra",
    # Parsing one small input takes microseconds, but a loaded 2-core CI machine can
    # stall any one example for seconds; only a real hang (5 s) is a failure.
    deadline=timedelta(seconds=5),
    # Generating nested JSON is slow when other processes share the CPU; that
    # says nothing about the code under test.
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("petra")
