"""The import graph points one way, as docs/architecture and the module table say."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "collector"

# module -> collector modules it must never import
FORBIDDEN: dict[str, set[str]] = {
    "config": {"app", "cli", "scheduler", "petra", "metrics", "web", "state"},
    "configreader": {"app", "cli", "config", "keys", "apikey", "petra", "scheduler", "state"},
    "usage": {"app", "cli", "config", "petra", "scheduler", "state", "metrics", "web"},
    "ratelimit": {"app", "cli", "petra", "scheduler", "state", "metrics", "web"},
    "state": {"app", "cli", "petra", "scheduler", "metrics", "web"},
    "scheduler": {"app", "cli", "petra", "metrics", "web"},
    "petra": {"app", "cli", "scheduler", "state", "metrics", "web"},
    "metrics": {"app", "cli", "petra", "scheduler", "web", "exposition", "gzipstream"},
    "exposition": {"app", "cli", "petra", "scheduler", "web"},
    "web": {"app", "cli", "petra", "scheduler"},
    "simulator": {"app", "cli", "scheduler", "metrics", "web", "petra"},
}
# Who may import the wiring modules at all.
ALLOWED_IMPORTERS = {
    "app": {"cli", "demo"},
    "cli": {"__main__"},
}


def collector_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("collector"):
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "collector" and len(parts) > 1:
                    found.add(parts[1])
    return found


def test_each_module_imports_only_downstream() -> None:
    """No module reaches up the flow (e.g. the scheduler never imports the HTTP client)."""
    for module, banned in FORBIDDEN.items():
        imported = collector_imports(PACKAGE / f"{module}.py")
        assert not imported & banned, f"{module} imports {sorted(imported & banned)}"


def test_the_gzip_framing_is_stdlib_only() -> None:
    """gzipstream.py is pure framing: no collector module, no third-party package."""
    tree = ast.parse((PACKAGE / "gzipstream.py").read_text())
    roots = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    roots |= {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert roots <= {"__future__", "struct", "typing", "zlib"}, sorted(roots)


def test_only_the_entry_points_import_the_wiring() -> None:
    """Nothing but the commands imports `app`, and nothing but __main__ imports `cli`."""
    for path in PACKAGE.glob("*.py"):
        imported = collector_imports(path)
        for wiring, allowed in ALLOWED_IMPORTERS.items():
            if wiring in imported:
                assert path.stem in allowed, f"{path.stem} imports {wiring}"
