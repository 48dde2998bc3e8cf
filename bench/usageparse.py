"""What reading a `/v1/usage` answer costs, by how it compares with the org's last one.

    python -m bench.usageparse --tenants 10 100 --against main   # ~1 min

The bodies are the simulator's, as it serves them (one org of T tenants). Each case
times `parse_usage_body(body, previous)`, `previous` read from:

- `identical`: the same body (the same report, the same `reportGeneratedAt`);
- `head changed`: the body with another `reportGeneratedAt`, the same tenants;
- `tail changed`: the body with one tenant's billable users moved.

Each figure is the median of `--runs` runs (each the best of 7 timeit repeats, in
microseconds per call) and their spread. `--against REV` times
`collector/petra_usage.py` of that git revision too, on the same bodies, its runs
interleaved with this tree's: a before and after on one machine at one time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import timeit
import types
from collections.abc import Callable

import orjson

from collector import petra_usage
from collector.petra_simulator import Simulator, bench_orgs

WALL = 1_795_671_116.0  # 2026-11-26T05:31:56Z
REPEATS = 7
Parse = Callable[[bytes, object], object]


def bodies(tenants: int) -> dict[str, tuple[bytes, bytes]]:
    """Per case: the body timed, and the body `previous` is read from."""
    org = bench_orgs(1, tenants)[0]
    sim = Simulator([org], wall_clock=lambda: WALL)
    body = sim._report_bytes(sim._state(org.name), None)  # noqa: SLF001 - the bytes it serves
    data = orjson.loads(body)
    head = orjson.dumps({**data, "reportGeneratedAt": "2026-11-25T05:31:56Z"})
    moved = [*data["tenants"][:-1], {**data["tenants"][-1], "billableUsersThisMonth": -1}]
    tail = orjson.dumps({**data, "tenants": moved})
    return {"identical": (body, body), "head changed": (body, head), "tail changed": (body, tail)}


def revision_module(revision: str) -> types.ModuleType:
    """`collector/petra_usage.py` as it is at the git `revision`."""
    source = subprocess.run(  # noqa: S603 - a fixed git command on the user's own revision
        ["git", "show", f"{revision}:collector/petra_usage.py"],  # noqa: S607 - git from PATH
        capture_output=True,
        check=True,
    ).stdout
    module = types.ModuleType(f"petra_usage_at_{revision}")
    exec(compile(source, f"{revision}:collector/petra_usage.py", "exec"), module.__dict__)  # noqa: S102 - this repository's own code, to time it
    return module


def best(parse: Parse, body: bytes, previous: object, number: int) -> float:
    """Microseconds per call, the best of REPEATS."""
    times = timeit.repeat(lambda: parse(body, previous), number=number, repeat=REPEATS)
    return min(times) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--against", metavar="REV", help="a git revision to time too")
    args = parser.parse_args()
    versions: dict[str, types.ModuleType] = {}
    if args.against:
        versions[args.against] = revision_module(args.against)
    versions["this tree"] = petra_usage
    for tenants in args.tenants:
        number = max(200, 200_000 // tenants)
        for case, (body, other) in bodies(tenants).items():
            runs: dict[str, list[float]] = {name: [] for name in versions}
            for _ in range(args.runs):
                for name, module in versions.items():
                    previous = module.parse_usage_body(other)
                    runs[name].append(best(module.parse_usage_body, body, previous, number))
            shown = "  ".join(
                f"{name} {statistics.median(times):7.2f} us ({min(times):.2f}-{max(times):.2f})"
                for name, times in runs.items()
            )
            print(f"{tenants:>4} tenants ({len(body):>6} B)  {case:<13} {shown}", flush=True)


if __name__ == "__main__":
    main()
