"""A small kustomize: exactly the features deploy/kubernetes uses, so tests can
render the manifests without the kustomize binary.

Supported in a kustomization.yaml: `resources` (files, or directories holding
a kustomization.yaml) and `patches` whose target names a kind and a name,
with either a JSON 6902 patch (a list of add/replace/remove operations) or a
strategic-merge patch that is only `$patch: delete` (remove the target).
Anything else raises `KustomizeError`, so a manifest change that needs more
of kustomize fails loudly here instead of rendering wrongly.
`tests/deploy/test_kubernetes.py` compares this renderer's output with
`kubectl kustomize` where kubectl is installed.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Final

import yaml

Obj = dict[str, Any]

KUSTOMIZATION_FIELDS: Final = frozenset({"apiVersion", "kind", "resources", "patches"})
PATCH_FIELDS: Final = frozenset({"path", "patch", "target"})
TARGET_FIELDS: Final = frozenset({"kind", "name", "group", "version"})


class KustomizeError(Exception):
    """The kustomization uses something this renderer does not implement, or is wrong."""


def build(directory: Path) -> list[Obj]:
    """Render the kustomization in `directory` into a list of objects."""
    directory = directory.resolve()
    spec = _load_kustomization(directory)
    objects: list[Obj] = []
    for entry in spec.get("resources", []):
        objects.extend(_load_resource(directory, entry))
    _check_unique(objects, directory)
    for patch in spec.get("patches", []):
        objects = _apply_patch(directory, objects, patch)
    return objects


def object_id(obj: Obj) -> tuple[str, str, str, str]:
    """(apiVersion group, kind, namespace, name): what kustomize treats as identity."""
    api_version = str(obj.get("apiVersion", ""))
    group = api_version.rpartition("/")[0]
    metadata = obj.get("metadata") or {}
    return (
        group,
        str(obj.get("kind")),
        str(metadata.get("namespace", "")),
        str(metadata.get("name")),
    )


def _load_kustomization(directory: Path) -> Obj:
    path = directory / "kustomization.yaml"
    if not path.is_file():
        raise KustomizeError(f"{directory}: no kustomization.yaml")
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(spec, dict):
        raise KustomizeError(f"{path}: not a mapping")
    if spec.get("kind") != "Kustomization" or spec.get("apiVersion") != (
        "kustomize.config.k8s.io/v1beta1"
    ):
        raise KustomizeError(f"{path}: not a kustomize.config.k8s.io/v1beta1 Kustomization")
    unsupported = set(spec) - KUSTOMIZATION_FIELDS
    if unsupported:
        raise KustomizeError(f"{path}: fields not implemented here: {sorted(unsupported)}")
    return spec


def _load_resource(directory: Path, entry: object) -> list[Obj]:
    if not isinstance(entry, str):
        raise KustomizeError(f"{directory}: resource {entry!r} is not a path")
    path = (directory / entry).resolve()
    if path.is_dir():
        return build(path)
    # Like kustomize's default load restrictor: files must be inside the root.
    if not path.is_relative_to(directory):
        raise KustomizeError(f"{directory}: resource file {entry} is outside the kustomization")
    if not path.is_file():
        raise KustomizeError(f"{directory}: resource {entry} not found")
    documents = [
        doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None
    ]
    for doc in documents:
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise KustomizeError(f"{path}: a document is not a Kubernetes object")
    return documents


def _check_unique(objects: list[Obj], directory: Path) -> None:
    seen: set[tuple[str, str, str, str]] = set()
    for obj in objects:
        key = object_id(obj)
        if key in seen:
            raise KustomizeError(f"{directory}: {key} is defined twice")
        seen.add(key)


def _matches(obj: Obj, target: Obj) -> bool:
    group, _, version = str(obj["apiVersion"]).rpartition("/")
    return bool(
        obj.get("kind") == target["kind"]
        and (obj.get("metadata") or {}).get("name") == target["name"]
        and target.get("group", group) == group
        and target.get("version", version) == version
    )


def _apply_patch(directory: Path, objects: list[Obj], entry: object) -> list[Obj]:
    if not isinstance(entry, dict) or set(entry) - PATCH_FIELDS:
        raise KustomizeError(f"{directory}: patch {entry!r} is not {{path|patch, target}}")
    target = entry.get("target")
    if (
        not isinstance(target, dict)
        or set(target) - TARGET_FIELDS
        or not {"kind", "name"} <= set(target)
    ):
        raise KustomizeError(f"{directory}: patch target must give kind and name: {target!r}")
    if ("path" in entry) == ("patch" in entry):
        raise KustomizeError(f"{directory}: a patch needs exactly one of path and patch")
    text = (
        (directory / str(entry["path"])).read_text(encoding="utf-8")
        if "path" in entry
        else str(entry["patch"])
    )
    content = yaml.safe_load(text)
    matched = [obj for obj in objects if _matches(obj, target)]
    if not matched:
        raise KustomizeError(f"{directory}: patch target {target} matches nothing")
    if isinstance(content, dict):
        if content.get("$patch") != "delete":
            raise KustomizeError(
                f"{directory}: strategic-merge patches other than `$patch: delete` "
                "are not implemented here; use a JSON 6902 patch"
            )
        return [obj for obj in objects if not _matches(obj, target)]
    if not isinstance(content, list):
        raise KustomizeError(f"{directory}: patch is neither a JSON 6902 list nor a mapping")
    result = []
    for obj in objects:
        patched = obj
        if _matches(obj, target):
            patched = copy.deepcopy(obj)
            for operation in content:
                apply_json6902(patched, operation)
        result.append(patched)
    return result


def apply_json6902(document: Obj, operation: object) -> None:
    """Apply one RFC 6902 add/replace/remove operation to `document` in place."""
    if not isinstance(operation, dict) or not isinstance(operation.get("path"), str):
        raise KustomizeError(f"bad JSON 6902 operation {operation!r}")
    op = operation.get("op")
    if op not in ("add", "replace", "remove"):
        raise KustomizeError(f"JSON 6902 op {op!r} is not implemented here")
    if op != "remove" and "value" not in operation:
        raise KustomizeError(f"JSON 6902 {op} without a value: {operation!r}")
    path = str(operation["path"])
    tokens = [token.replace("~1", "/").replace("~0", "~") for token in path.split("/")[1:]]
    if not tokens:
        raise KustomizeError("JSON 6902 operations on the whole document are not supported")
    parent: Any = document
    for token in tokens[:-1]:
        parent = parent[int(token)] if isinstance(parent, list) else parent[token]
    value = operation.get("value")
    if isinstance(parent, list):
        _apply_to_list(parent, op, tokens[-1], value)
    elif isinstance(parent, dict):
        if op != "add" and tokens[-1] not in parent:
            raise KustomizeError(f"JSON 6902 {op}: {path} does not exist")
        if op == "remove":
            del parent[tokens[-1]]
        else:
            parent[tokens[-1]] = value
    else:
        raise KustomizeError(f"JSON 6902 path {path} goes through a scalar")


def _apply_to_list(parent: list[Any], op: str, token: str, value: object) -> None:
    index = len(parent) if token == "-" else int(token)
    if op == "add":
        parent.insert(index, value)
    elif op == "replace":
        parent[index] = value
    else:
        del parent[index]
