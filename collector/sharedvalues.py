"""One copy of the values that recur across tenants, for the reports that live on.

A report is parsed into new objects every poll: each tenant's `service` and
`billable_status` (a handful of distinct texts across a whole fleet) and its
counts (small numbers, the same few hundred everywhere) are new strings and
floats, 24-70 bytes each. The report kept for an org (state.py) is rebuilt
with the copies kept here, so the fleet holds each such value once: about 40 MB
less at 20,000 orgs x 10 tenants. Only a report whose tenants changed is
rebuilt (a report equal to the last one keeps the last one's tuple), so polling
in steady state never pays for it.

Zero is never shared (0.0 and -0.0 are one key but two values), nor NaN; each
table stops growing at its bound, after which values are kept as they came.
"""

from __future__ import annotations

import math
from typing import Final, TypeVar

from collector.usage import TenantUsage

_Value = TypeVar("_Value", str, float)
TEXTS_KEPT: Final = 4096
NUMBERS_KEPT: Final = 65536
_TEXTS: Final[dict[str, str]] = {}
_NUMBERS: Final[dict[float, float]] = {}


def shared_tenants(tenants: tuple[TenantUsage, ...]) -> tuple[TenantUsage, ...]:
    """`tenants`, equal, with their recurring values replaced by the kept copies."""
    return tuple(
        TenantUsage(
            tenant.tenant_id,
            tenant.microsoft_tenant_id,
            tenant.display_name,
            _text(tenant.service),
            _text(tenant.billable_status),
            tenant.is_paused,
            _number(tenant.licensed_users),
            _number(tenant.billable_users),
            _number(tenant.prorating_ratio),
            _number(tenant.onboarding_timestamp),
            _number(tenant.first_billable_timestamp),
        )
        for tenant in tenants
    )


def _text(value: str | None) -> str | None:
    return None if value is None else _kept(_TEXTS, value, TEXTS_KEPT)


def _number(value: float | None) -> float | None:
    if not value or math.isnan(value):  # None, 0.0, -0.0 or NaN: as they are
        return value
    return _kept(_NUMBERS, value, NUMBERS_KEPT)


def _kept(table: dict[_Value, _Value], value: _Value, limit: int) -> _Value:
    """The kept copy of `value`, keeping this one if there is none and room is left."""
    kept = table.get(value)
    if kept is not None:
        return kept
    if len(table) < limit:
        table[value] = value
    return value
