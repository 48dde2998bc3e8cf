"""`OrgState` has one writer: only the methods in collector/state.py change one.

The `/metrics` cache trusts `OrgState.version` to change with everything an
org exports; a field assigned from elsewhere would skip the bump and serve
stale lines. So the package's code is read with `ast`, and any change to an
attribute named like an `OrgState` field, outside state.py, fails: a plain,
augmented, annotated or unpacking assignment, an item assignment into one
(`state.requests_by_code[code] = ...`), `del`, `setattr` and
`object.__setattr__`.

Being a reading of the code, not of types, it must tell an `OrgState` from
another object with an attribute of the same name. It does so simply:
attributes of `self`, and attribute names that the module's own classes
declare (the simulator's own per-org record has a `version` too), are that
module's business. Add a method to state.py rather than an exception here.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from collector.state import OrgState

PACKAGE = Path(__file__).resolve().parents[2] / "collector"
FIELDS = frozenset(field.name for field in dataclasses.fields(OrgState))
SETTERS = frozenset({"setattr", "__setattr__", "delattr", "__delattr__"})


def own_attribute_names(tree: ast.Module) -> set[str]:
    """Attribute names the module's own classes declare (class-level or on `self`)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
                elif isinstance(item, ast.Assign):
                    names.update(t.id for t in item.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.update(_self_attribute(node))
    return names


def _self_attribute(node: ast.Attribute) -> list[str]:
    """`[name]` for `self.name`, else nothing."""
    is_self = isinstance(node.value, ast.Name) and node.value.id == "self"
    return [node.attr] if is_self else []


def _written_attribute(target: ast.expr) -> list[ast.Attribute]:
    """The attributes an assignment target changes: `a.b`, `a.b[k]`, and inside `x, a.b`."""
    if isinstance(target, ast.Tuple | ast.List):
        return [found for element in target.elts for found in _written_attribute(element)]
    if isinstance(target, ast.Starred):
        return _written_attribute(target.value)
    if isinstance(target, ast.Subscript):
        target = target.value
    if isinstance(target, ast.Attribute):
        return [target]
    return []


def _targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        return node.targets
    if isinstance(node, ast.AugAssign | ast.AnnAssign):
        return [node.target]
    if isinstance(node, ast.Delete):
        return node.targets
    if isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
        return [node.target]
    if isinstance(node, ast.withitem) and node.optional_vars is not None:
        return [node.optional_vars]
    return []


def _setter_call(node: ast.Call) -> str | None:
    """The attribute name a `setattr(obj, "name", value)`-like call changes, if it names one."""
    if len(node.args) < 2:
        return None
    func = node.func
    name = (
        func.id
        if isinstance(func, ast.Name)
        else func.attr
        if isinstance(func, ast.Attribute)
        else ""
    )
    field = node.args[1]
    if name in SETTERS and isinstance(field, ast.Constant) and isinstance(field.value, str):
        return field.value
    return None


def foreign_writes(source: str) -> list[tuple[int, str]]:
    """Each change to an OrgState field that `source` makes, as (line, field), in order."""
    tree = ast.parse(source)
    own = own_attribute_names(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        for target in _targets(node):
            for attribute in _written_attribute(target):
                is_self = bool(_self_attribute(attribute))
                if attribute.attr in FIELDS and attribute.attr not in own and not is_self:
                    found.append((attribute.lineno, attribute.attr))
        if isinstance(node, ast.Call):
            field = _setter_call(node)
            if field is not None and field in FIELDS and field not in own:
                found.append((node.lineno, field))
    return sorted(found)


def test_no_module_but_state_changes_an_org_state() -> None:
    """Every module of the package other than state.py leaves OrgState fields alone."""
    offenders = {
        str(path.relative_to(PACKAGE)): writes
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "state.py" and (writes := foreign_writes(path.read_text(encoding="utf-8")))
    }
    assert not offenders, f"change these through methods of collector/state.py: {offenders}"


def test_every_form_of_writing_a_field_is_caught() -> None:
    """The check sees each way of changing an attribute (so the test above can fail)."""
    source = """
def poll(runner, state, pairs):
    runner.state.next_poll_at = 1.0
    state.version += 1
    state.last_error: str = "x"
    state.health, other = None, 2
    runner.state.requests_by_code["200"] = 3
    del state.report
    setattr(state, "key_fingerprint", "sha256:0")
    object.__setattr__(state, "interval_seconds", 5.0)
    for state.poll_duration in pairs:
        pass
"""
    assert [field for _line, field in foreign_writes(source)] == [
        "next_poll_at",
        "version",
        "last_error",
        "health",
        "requests_by_code",
        "report",
        "key_fingerprint",
        "interval_seconds",
        "poll_duration",
    ]


def test_the_module_s_own_objects_are_not_org_states() -> None:
    """Attributes of `self`, or ones the module's own classes declare, are not flagged."""
    source = """
class Entry:
    version: int = 0

class Record:
    def __init__(self):
        self.health = "ok"

def touch(entry, record):
    entry.version += 1
    record.health = "bad"
"""
    assert foreign_writes(source) == []
