"""The Dockerfile and .dockerignore, read statically: multi-stage, non-root, the documented
entrypoint, a minimal context, the OCI labels. The image is built and run in
tests/integration/test_container_image.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DEPLOYMENT = ROOT / "deploy" / "kubernetes" / "base" / "deployment.yaml"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, rest))
    return result


def test_multi_stage_build_on_one_base_python_312_slim_by_default() -> None:
    """A build stage installs the package into a venv; the final stage, on the same base
    (python:3.12-slim unless BASE_IMAGE says otherwise), copies the venv from it."""
    all_stages = stages()
    assert len(all_stages) >= 2
    assert ("ARG", "PYTHON_VERSION=3.12") in instructions()
    assert ("ARG", "BASE_IMAGE=python:${PYTHON_VERSION}-slim") in instructions()
    for stage in all_stages:
        assert stage[0][1].startswith("${BASE_IMAGE}")
    assert all_stages[0][0][1].endswith(" AS build")
    build_steps = " ".join(rest for keyword, rest in all_stages[0] if keyword == "RUN")
    assert "${PIP_INSTALL_OPTIONS} --find-links /src/wheels" in build_steps
    assert ("ARG", "PIP_INSTALL_OPTIONS=") in all_stages[0]
    final = all_stages[-1]
    assert any(k == "COPY" and rest.startswith("--from=build ") for k, rest in final)


def test_oci_labels_carry_version_revision_and_created_from_build_args() -> None:
    """org.opencontainers.image.version, .revision and .created come from build arguments."""
    final = stages()[-1]
    labels = " ".join(rest for keyword, rest in final if keyword == "LABEL")
    for label, argument in (
        ("version", "VERSION"),
        ("revision", "REVISION"),
        ("created", "CREATED"),
    ):
        assert f'org.opencontainers.image.{label}="${{{argument}}}"' in labels
        assert ("ARG", f"{argument}=unknown") in final


def test_final_stage_has_no_build_tools() -> None:
    """The final stage installs no packages and compiles nothing; pip is removed."""
    final_runs = " ".join(rest for keyword, rest in stages()[-1] if keyword == "RUN")
    for forbidden in ("apt-get", "apk ", "gcc", "build-essential", "pip install", "pip wheel"):
        assert forbidden not in final_runs
    assert "pip uninstall" in final_runs


def test_runs_as_numeric_non_root_user_matching_kubernetes() -> None:
    """USER is a numeric non-root uid:gid, the one the Kubernetes pod runs as."""
    users = [rest for keyword, rest in stages()[-1] if keyword == "USER"]
    assert len(users) == 1
    uid, _, gid = users[0].partition(":")
    assert uid.isdigit()
    assert gid.isdigit()
    assert int(uid) > 0
    assert int(gid) > 0
    pod = yaml.safe_load(DEPLOYMENT.read_text())["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid)
    assert pod["securityContext"]["runAsGroup"] == int(gid)


def test_entrypoint_cmd_and_port() -> None:
    """ENTRYPOINT is petra-collector; CMD runs the daemon on 0.0.0.0:9865, which is EXPOSEd."""
    final = dict(stages()[-1])
    assert json.loads(final["ENTRYPOINT"]) == ["petra-collector"]
    assert json.loads(final["CMD"]) == [
        "run",
        "--config",
        "/etc/petra-collector/config.yaml",
        "--web.listen-address",
        "0.0.0.0:9865",
    ]
    assert final["EXPOSE"] == "9865"
    assert "127.0.0.1:9865/healthz" in final["HEALTHCHECK"]


def test_dockerignore_is_an_allow_list() -> None:
    """The build context is only pyproject, README/LICENSE, collector and wheels (for a build
    without a registry): never keys or .git."""
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:] for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README*", "LICENSE*", "collector/", "wheels/"}
    copied = [rest for keyword, rest in stages()[0] if keyword == "COPY"]
    assert copied == [". ./"]
