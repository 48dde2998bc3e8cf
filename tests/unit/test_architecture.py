"""The import graph follows the layers drawn in docs/architecture.md.

`LAYERS` lists the package's layers from the bottom up. Every module of the
package is placed in exactly one, so a new module fails
`test_every_module_has_exactly_one_layer` until someone decides where it
belongs. A module imports only modules of its own layer or below. Layers on
different `arm`s of the flow never import each other at all: the Petra
client, the polling loops and the serving side meet only in `app`.

Where new modules go (docs/architecture.md, "Where a change belongs"):
a parser of Petra answers (e.g. `petra_billing`) beside `petra_usage` in
"parsing"; what a route keeps across restarts in its codec in `routes`; a
reader of state beside `metrics` in "reading"; a pure, stdlib-only helper
(like `gzipstream`) in "foundation"; a new command beside `check`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "collector"


@dataclass(frozen=True)
class Layer:
    name: str
    modules: frozenset[str]
    arm: str | None = None  # layers on different arms never import each other


def layer(name: str, *modules: str, arm: str | None = None) -> Layer:
    return Layer(name, frozenset(modules), arm)


LAYERS: tuple[Layer, ...] = (
    # The version, value types and pure helpers (YAML reading for config files, gzip
    # framing): nothing of the package below them.
    layer(
        "foundation",
        *("__init__", "apikey", "petra_errors", "sharding", "logs", "sdnotify"),
        *("config_reader", "gzipstream", "memory_gc", "memory_trim", "bounded", "open_files"),
        "labelled_counter",
    ),
    # Outside input made typed (Petra's JSON, key files), and limiter arithmetic.
    layer(
        "parsing",
        *("petra_usage", "petra_incidents", "petra_billing", "keys", "ratelimit", "sharedvalues"),
    ),
    # The config file, validated whole into frozen settings.
    layer("settings", "config"),
    # The per-org snapshot, and its only writer; the state file that keeps it across
    # restarts (its format, and the task that writes it).
    layer("state", "state_records", "state"),
    # Petra's routes, each described once (path, timing, what a good answer leaves in
    # state, its state-file section): below the arms, which all read the descriptions.
    layer("routes", "routes"),
    # The state file: its record format (every route's section through one codec), the
    # journal that stores the records, the lock that keeps it to one collector, and the
    # task that writes it.
    layer("storing", "state_file", "state_journal", "state_lock", "state_store"),
    # The three arms the daemon wires together.
    layer("client", "petra_client", arm="client"),
    layer("polling", "scheduler", "key_watch", arm="polling"),
    layer("reading", "metrics", "web_status", "web_page", arm="serving"),
    # Above the readers, so `metrics` stays the table of families and knows no cache.
    layer("rendering", "exposition", arm="serving"),
    # The listener's lock (web config, TLS, basic auth) beside the routes it guards, and
    # the listener itself (connection cap, header deadline, its own error answers).
    layer(
        "serving",
        *("web_app", "web_config", "web_guard", "web_tls", "web_basicauth", "web_encoding"),
        *("web_listener", "web_errors"),
        arm="serving",
    ),
    # Start-up, reload and shutdown: the one module that knows all three arms.
    layer("wiring", "app"),
    # Commands and tools run from the command line (the simulator is the fake API).
    layer("commands", "check", "demo", "petra_simulator", "cli", "__main__"),
)

# Who may import the wiring at all (the layers allow more: every command could).
ALLOWED_IMPORTERS = {
    "app": {"cli", "demo"},
    "cli": {"__main__"},
}


@cache
def package_modules() -> frozenset[str]:
    """Every module of the package, dotted below `collector` (`__init__` for the package)."""
    return frozenset(
        ".".join(path.relative_to(PACKAGE).with_suffix("").parts) for path in PACKAGE.rglob("*.py")
    )


def collector_imports(module: str) -> set[str]:
    """The package's modules that `module` imports, anywhere in it (lazy imports too)."""
    path = PACKAGE.joinpath(*module.split(".")).with_suffix(".py")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            found.update(_from_import(node))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "collector":
                    found.add(".".join(parts[1:]) or "__init__")
    return found


def _from_import(node: ast.ImportFrom) -> set[str]:
    if node.level:  # relative: the package is flat, so `.x` is collector.x
        base = node.module or ""
    elif node.module is not None and node.module.split(".")[0] == "collector":
        base = node.module.removeprefix("collector").removeprefix(".")
    else:
        return set()
    if base:
        return {base}
    # `from collector import x`: x is a module, or a name of the package's __init__.
    modules = package_modules()
    return {alias.name if alias.name in modules else "__init__" for alias in node.names}


def layer_of(module: str) -> tuple[int, Layer]:
    for index, candidate in enumerate(LAYERS):
        if module in candidate.modules:
            return index, candidate
    raise AssertionError(f"{module} has no layer")


def may_import(importer: str, imported: str) -> bool:
    low, lower = layer_of(imported)
    high, higher = layer_of(importer)
    if low > high:
        return False
    return lower.arm is None or higher.arm is None or lower.arm == higher.arm


def test_every_module_has_exactly_one_layer() -> None:
    """A new module is placed in LAYERS before anything else; none is placed twice, and
    no layer names a module that is gone."""
    placed = [module for each in LAYERS for module in each.modules]
    doubled = sorted({module for module in placed if placed.count(module) > 1})
    assert not doubled, f"in more than one layer: {doubled}"
    existing = package_modules()
    assert not existing - set(placed), (
        f"place {sorted(existing - set(placed))} in LAYERS (see docs/architecture.md)"
    )
    assert not set(placed) - existing, f"LAYERS names missing modules {set(placed) - existing}"


def test_each_module_imports_only_its_own_layer_or_below() -> None:
    """Imports point down the layers, and never across arms (e.g. the scheduler knows a
    Fetcher protocol, not the Petra client; the web side reads state, not the scheduler)."""
    wrong = {
        module: sorted(bad)
        for module in sorted(package_modules())
        if (bad := {i for i in collector_imports(module) if not may_import(module, i)})
    }
    assert not wrong, f"imports against the layers: {wrong}"


def test_only_the_entry_points_import_the_wiring() -> None:
    """Nothing but the commands imports `app`, and nothing but __main__ imports `cli`."""
    for module in package_modules():
        imported = collector_imports(module)
        for wiring, allowed in ALLOWED_IMPORTERS.items():
            if wiring in imported:
                assert module in allowed, f"{module} imports {wiring}"


def import_cycles() -> list[list[str]]:
    """Every cycle in the package's import graph (lazy and TYPE_CHECKING imports too),
    each as the modules along it, found by a depth-first search."""
    graph = {module: sorted(collector_imports(module) - {module}) for module in package_modules()}
    cycles: list[list[str]] = []
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycles.append([*path[path.index(module) :], module])
            return
        if module in done:
            return
        for imported in graph.get(module, []):
            visit(imported, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    return cycles


def test_there_is_no_import_cycle() -> None:
    """No module imports, however indirectly or lazily, a module that imports it."""
    assert not import_cycles(), f"import cycles: {import_cycles()}"


def test_the_rules_catch_what_they_forbid() -> None:
    """An import up the layers, or across arms, is refused; down and within an arm is not."""
    assert may_import("scheduler", "state")
    assert may_import("web_app", "metrics")
    assert may_import("app", "scheduler")
    assert not may_import("state", "scheduler")  # up
    assert not may_import("config", "state")  # up
    assert not may_import("scheduler", "petra_client")  # across arms
    assert not may_import("metrics", "scheduler")  # across arms
    assert not may_import("web_app", "petra_client")  # across arms
