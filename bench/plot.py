"""Draw docs/performance.png from `python -m bench.run --json FILE` results.

    python -m bench.plot results.jsonl docs/performance.png

Needs matplotlib (`pip install -e '.[bench]'`). Uses the single-instance runs
with 10 tenants per org, the last one for each org count.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def load(path: Path, tenants: int) -> list[dict[str, Any]]:
    """The last single-instance run per org count, with `tenants` tenants per org."""
    runs: dict[int, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        run = json.loads(line)
        if run["tenants"] == tenants and run["shards"] == 1 and run["instances"]:
            runs[run["orgs"]] = run
    return [runs[orgs] for orgs in sorted(runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--tenants", type=int, default=10)
    args = parser.parse_args()
    import matplotlib as mpl  # noqa: PLC0415 - the optional `bench` extra; only this script needs it

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - after choosing the backend

    runs = load(args.results, args.tenants)
    orgs = [run["orgs"] for run in runs]
    figure, (polls, scrapes) = plt.subplots(1, 2, figsize=(11, 4.2))
    polls.plot(orgs, [r["instances"][0]["cpu_ms_per_poll"] for r in runs], "o-", label="daemon")
    polls.plot(
        orgs,
        [r["baseline_cpu_ms_per_poll"] for r in runs],
        "s--",
        label="bare aiohttp + orjson loop",
    )
    polls.set_xlabel("organizations (one poll each per 60 s)")
    polls.set_ylabel("CPU per successful poll (ms)")
    polls.set_title(f"Poll path, {args.tenants} tenants per org")
    polls.set_ylim(bottom=0)
    polls.legend()
    with_stock = [r for r in runs if r["stock"]]
    x = [r["orgs"] for r in with_stock]
    stock = [r["stock"]["text_seconds"] + r["stock"]["gzip1_seconds"] for r in with_stock]
    scrapes.plot(x, stock, "s--", label="stock generate_latest + gzip 1")
    fast = [r["fast"]["all_polled_gzip_seconds"] for r in with_stock]
    scrapes.plot(x, fast, "o-", label="cached, every org changed")
    unchanged = [r["fast"]["unchanged_gzip_seconds"] for r in with_stock]
    scrapes.plot(x, unchanged, "^:", label="cached, nothing changed")
    daemon = [
        (r["orgs"], r["instances"][0]["scrapes"][0]["cpu_seconds"])
        for r in runs
        if r["instances"][0]["scrapes"]
    ]
    if daemon:
        scrapes.plot(*zip(*daemon, strict=True), "D", label="daemon /metrics (15 s after last)")
    scrapes.set_xlabel("organizations")
    scrapes.set_ylabel("CPU per /metrics body, gzip (s)")
    scrapes.set_yscale("log")
    scrapes.set_title(f"Scrape path, {args.tenants} tenants per org")
    scrapes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
