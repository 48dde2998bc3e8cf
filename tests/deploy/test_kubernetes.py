"""The kustomize manifests in deploy/kubernetes/: both renders are valid
Kubernetes objects, the pods are locked down, the sharded overlay is
consistent, and the Prometheus Operator objects match the plain rules."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # the package ships no type hints
import pytest
import yaml

from collector.config import parse_config
from collector.web_config import load_web_config
from tests.deploy.kustomize import Obj, build, object_id
from tests.webtls import TlsFiles

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
SHARDED = KUBERNETES / "overlays" / "sharded"
REPLICAS = KUBERNETES / "overlays" / "replicas"
SECRET_EXAMPLE = BASE / "secret.example.yaml"
WEB_SECRETS_EXAMPLE = BASE / "secret-web.example.yaml"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
KEYS_MOUNT = "/run/secrets/petra"
WEB_CONFIG_MOUNT = "/run/secrets/petra-web"
TLS_MOUNT = "/run/secrets/petra-tls"
CONFIG_MOUNT = "/etc/petra-collector"
# The oldest Kubernetes the manifests support (pod-index label: 1.28) and the
# newest the validator knows.
KUBERNETES_VERSIONS = ("1.28.0", kubernetes_validate.latest_version())
RENDERS = {"base": BASE, "replicas": REPLICAS, "sharded": SHARDED}
# Petra's own limit is 10 a minute per key and route; the shipped configs keep to 5 per key
# between all the pods that poll an org.
KEY_BUDGET_PER_ORG = 5.0


def render(name: str) -> list[Obj]:
    return build(RENDERS[name])


def web_secrets() -> dict[str, Obj]:
    """The example Secrets of the web config, TLS files and scrape login, by name."""
    documents = yaml.safe_load_all(WEB_SECRETS_EXAMPLE.read_text())
    return {obj["metadata"]["name"]: obj for obj in documents}


def one(objects: list[Obj], kind: str) -> Obj:
    found = [obj for obj in objects if obj["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def workload(objects: list[Obj]) -> Obj:
    (found,) = [obj for obj in objects if obj["kind"] in ("Deployment", "StatefulSet")]
    return found


def container(obj: Obj) -> dict[str, Any]:
    (found,) = obj["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = found
    return result


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_render_has_the_expected_objects(name: str) -> None:
    """base renders a Deployment; replicas adds a PodDisruptionBudget; sharded swaps the
    Deployment for a StatefulSet behind a headless Service, with a PodDisruptionBudget."""
    kinds = sorted(obj["kind"] for obj in render(name))
    workload_kind = "StatefulSet" if name == "sharded" else "Deployment"
    budget = [] if name == "base" else ["PodDisruptionBudget"]
    assert kinds == sorted(
        [
            "ServiceAccount",
            "ConfigMap",
            "Service",
            "NetworkPolicy",
            workload_kind,
            "ServiceMonitor",
            "PrometheusRule",
            *budget,
        ]
    )


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_render_matches_kubectl_kustomize(name: str) -> None:
    """The test renderer gives the same objects as the real kustomize (when kubectl exists)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: the Python renderer is used alone")
    result = subprocess.run(  # noqa: S603 - fixed kubectl command line on a repository path
        [kubectl, "kustomize", str(RENDERS[name])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    theirs = {object_id(obj): obj for obj in yaml.safe_load_all(result.stdout) if obj}
    ours = {object_id(obj): obj for obj in render(name)}
    assert ours == theirs


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", sorted(RENDERS))
def test_builtin_objects_validate_against_kubernetes_schemas(name: str, version: str) -> None:
    """Every built-in object passes strict (no unknown fields) schema validation."""
    objects = [*render(name), yaml.safe_load(SECRET_EXAMPLE.read_text()), *web_secrets().values()]
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # CRDs: checked by the structural tests below
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} for {version}: {error}")


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_pod_is_locked_down(name: str) -> None:
    """Non-root, read-only root fs, no privilege escalation, ALL caps dropped, RuntimeDefault."""
    obj = workload(render(name))
    pod = obj["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    security = container(obj)["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]
    resources = container(obj)["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_container_runs_the_daemon_with_probes(name: str) -> None:
    """The container listens on all interfaces at the probed port; /healthz and /readyz probe it."""
    spec = container(workload(render(name)))
    args = spec["args"]
    assert args[0] == "run"
    assert args[args.index("--config") + 1] == f"{CONFIG_MOUNT}/config.yaml"
    assert args[args.index("--web.listen-address") + 1] == "0.0.0.0:9865"
    assert args[args.index("--web.config.file") + 1] == f"{WEB_CONFIG_MOUNT}/web.yml"
    assert spec["ports"] == [{"name": "metrics", "containerPort": 9865, "protocol": "TCP"}]
    # The port speaks TLS only; the probe paths need no credentials.
    assert spec["livenessProbe"]["httpGet"] == {
        "path": "/healthz",
        "port": "metrics",
        "scheme": "HTTPS",
    }
    assert spec["readinessProbe"]["httpGet"] == {
        "path": "/readyz",
        "port": "metrics",
        "scheme": "HTTPS",
    }


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_references_between_objects_resolve(name: str) -> None:
    """The pod's ConfigMap, Secret, ServiceAccount and the Service's selector all line up."""
    objects = render(name)
    obj = workload(objects)
    pod = obj["spec"]["template"]["spec"]
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("ServiceAccount", pod["serviceAccountName"]) in names
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert ("ConfigMap", volumes["config"]["configMap"]["name"]) in names
    secret = yaml.safe_load(SECRET_EXAMPLE.read_text())
    assert volumes["keys"]["secret"]["secretName"] == secret["metadata"]["name"]
    secrets = web_secrets()
    assert volumes["web-config"]["secret"]["secretName"] in secrets
    assert volumes["tls"]["secret"]["secretName"] in secrets
    mounts = {mount["name"]: mount["mountPath"] for mount in container(obj)["volumeMounts"]}
    assert mounts["config"] == CONFIG_MOUNT
    assert mounts["keys"] == KEYS_MOUNT
    assert mounts["web-config"] == WEB_CONFIG_MOUNT
    assert mounts["tls"] == TLS_MOUNT
    labels = obj["spec"]["template"]["metadata"]["labels"]
    selector = obj["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    service = one(objects, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} == {"metrics"}


def test_configmap_config_is_valid_and_matches_the_secret(tmp_path: Path) -> None:
    """The ConfigMap's config.yaml loads, and every key file it names is a key of the Secret."""
    config_text = one(render("base"), "ConfigMap")["data"]["config.yaml"]
    secret = yaml.safe_load(SECRET_EXAMPLE.read_text())
    for key, value in secret["stringData"].items():
        (tmp_path / key).write_text(value)
    files = re.findall(r"api_key_file:\s*(\S+)", config_text)
    assert files
    assert {Path(f).parent.as_posix() for f in files} == {KEYS_MOUNT}
    assert {Path(f).name for f in files} == set(secret["stringData"])
    loaded = parse_config(config_text.replace(KEYS_MOUNT, str(tmp_path)), source="configmap")
    assert len(loaded.settings.orgs) == len(files)
    assert loaded.warnings == ()


def test_each_orgs_pods_share_one_key_budget(tmp_path: Path) -> None:
    """Every render's config loads with the base's orgs; the pods that poll an org (the
    replicas, or the copies when sharded) together spend the base's budget of each key."""
    secret = yaml.safe_load(SECRET_EXAMPLE.read_text())
    for key, value in secret["stringData"].items():
        (tmp_path / key).write_text(value)
    for name in RENDERS:
        objects = render(name)
        text = one(objects, "ConfigMap")["data"]["config.yaml"]
        settings = parse_config(text.replace(KEYS_MOUNT, str(tmp_path)), source=name).settings
        replicas = workload(objects)["spec"].get("replicas", 1)
        pollers = settings.sharding.copies if name == "sharded" else replicas
        assert pollers == (1 if name == "base" else 2), name
        budget = settings.polling.requests_per_minute_per_key
        assert budget * pollers == KEY_BUDGET_PER_ORG, name
        orgs = [(org.name, org.key_source, org.interval_seconds) for org in settings.orgs]
        if name == "base":
            base_orgs = orgs
        assert orgs == base_orgs, name


@pytest.mark.parametrize("name", ["replicas", "sharded"])
def test_disruption_budget_lets_one_pod_go_at_a_time(name: str) -> None:
    """The PodDisruptionBudget selects the pods and lets one of them be evicted at a time."""
    objects = render(name)
    pdb = one(objects, "PodDisruptionBudget")
    labels = workload(objects)["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": pdb["spec"]["selector"]["matchLabels"]},
    }
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_replicas_are_two_base_pods_on_different_nodes() -> None:
    """The replicas overlay: 2 of the base's pod, never two on a node (required anti-affinity
    on the hostname), replaced one at a time (no surge pod that could not be scheduled)."""
    deployment = workload(render("replicas"))
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    pod = copy.deepcopy(deployment["spec"]["template"])
    affinity = pod["spec"].pop("affinity")
    (term,) = affinity["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert pod == workload(render("base"))["spec"]["template"]


def test_sharded_statefulset_gets_its_shard_from_the_pod_index() -> None:
    """Pod N runs --shard N/R with R = replicas, N from the pod-index label."""
    objects = render("sharded")
    statefulset = one(objects, "StatefulSet")
    spec = container(statefulset)
    args = spec["args"]
    shard = args[args.index("--shard") + 1]
    match = re.fullmatch(r"\$\(POD_INDEX\)/(\d+)", shard)
    assert match, shard
    assert int(match.group(1)) == statefulset["spec"]["replicas"] == 3
    (env,) = [e for e in spec["env"] if e["name"] == "POD_INDEX"]
    assert env["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    service = one(objects, "Service")
    assert service["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]


def test_sharded_pod_is_the_base_pod_plus_sharding() -> None:
    """The StatefulSet's pod equals the Deployment's but for --shard, POD_INDEX and spreading."""
    base_pod = copy.deepcopy(workload(render("base"))["spec"]["template"])
    sharded_pod = copy.deepcopy(workload(render("sharded"))["spec"]["template"])
    sharded_spec = sharded_pod["spec"]
    sharded_spec.pop("topologySpreadConstraints")
    sharded_container = sharded_spec["containers"][0]
    sharded_container.pop("env")
    args = sharded_container["args"]
    index = args.index("--shard")
    del args[index : index + 2]
    # The state volume: an emptyDir in the base, a volumeClaimTemplate when sharded.
    base_pod["spec"]["volumes"] = [v for v in base_pod["spec"]["volumes"] if v["name"] != "state"]
    assert sharded_pod == base_pod


def test_the_state_file_is_on_the_state_volume() -> None:
    """base: an emptyDir (survives container restarts); sharded: a PersistentVolumeClaim per
    shard (survives the pod moving). The config's state.path lies on that volume."""
    config = yaml.safe_load(one(render("base"), "ConfigMap")["data"]["config.yaml"])
    state_path = Path(config["state"]["path"])
    for name in RENDERS:
        obj = workload(render(name))
        mounts = {m["name"]: m for m in container(obj)["volumeMounts"]}
        assert state_path.parent == Path(mounts["state"]["mountPath"])
        assert not mounts["state"].get("readOnly", False)
        volumes = {v["name"]: v for v in obj["spec"]["template"]["spec"]["volumes"]}
        if obj["kind"] == "Deployment":
            assert "emptyDir" in volumes["state"]
            assert "medium" not in volumes["state"]["emptyDir"]  # not in the pod's memory
        else:
            assert "state" not in volumes
            (claim,) = obj["spec"]["volumeClaimTemplates"]
            assert claim["metadata"]["name"] == "state"
            assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_service_monitor_scrapes_the_service() -> None:
    """The ServiceMonitor selects the Service by its labels and scrapes its named port."""
    for name in RENDERS:
        objects = render(name)
        monitor = one(objects, "ServiceMonitor")
        service = one(objects, "Service")
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= service["metadata"]["labels"].items()
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
        assert endpoint["path"] == "/metrics"
        assert endpoint["scheme"] == "https"
        assert re.fullmatch(r"\d+[smh]", endpoint["interval"])
        assert re.fullmatch(r"\d+[smh]", endpoint["scrapeTimeout"])
        # The operator names the job after the Service; the rules expect this job.
        assert service["metadata"]["name"] == "petra-collector"


def test_prometheus_rule_is_alerts_yml() -> None:
    """The PrometheusRule carries exactly the groups of deploy/prometheus/alerts.yml."""
    rule = one(render("base"), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(rule) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(rule["spec"]) == {"groups"}
    expected = yaml.safe_load(ALERTS.read_text())["groups"]
    assert rule["spec"]["groups"] == expected, (
        "deploy/kubernetes/base/prometheusrule.yaml drifted from deploy/prometheus/alerts.yml"
    )
    for group in rule["spec"]["groups"]:
        for entry in group["rules"]:
            assert set(entry) <= {
                "alert",
                "record",
                "expr",
                "for",
                "keep_firing_for",
                "labels",
                "annotations",
            }
            assert isinstance(entry["expr"], str)


def test_image_tag_is_the_package_version() -> None:
    """The manifests deploy the image of the version in pyproject.toml."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name in RENDERS:
        image = container(workload(render(name)))["image"]
        assert image == f"ghcr.io/petra-collector/petra-collector:{version}"


def test_web_config_secret_loads_and_matches_the_service_monitor(tmp_path: Path) -> None:
    """The example web.yml loads (with real files at its paths); the ServiceMonitor trusts the
    TLS Secret's CA and logs in as one of its users, with the scrape Secret's password."""
    secrets = web_secrets()
    web_yml = secrets["petra-collector-web-config"]["stringData"]["web.yml"]
    tls = TlsFiles(tmp_path / "tls")
    web = yaml.safe_load(web_yml)
    assert web["tls_server_config"]["cert_file"] == f"{TLS_MOUNT}/tls.crt"
    assert web["tls_server_config"]["key_file"] == f"{TLS_MOUNT}/tls.key"
    path = tmp_path / "web.yml"
    path.write_text(web_yml.replace(TLS_MOUNT, str(tls.directory)))
    loaded = load_web_config(path)
    assert loaded.ssl_context is not None
    tls_secret = secrets["petra-collector-tls"]
    assert tls_secret["type"] == "kubernetes.io/tls"
    assert {"tls.crt", "tls.key", "ca.crt"} <= set(tls_secret["stringData"])
    (endpoint,) = one(render("base"), "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["tlsConfig"]["ca"]["secret"] == {"name": "petra-collector-tls", "key": "ca.crt"}
    login = endpoint["basicAuth"]
    scrape = secrets[login["username"]["name"]]
    assert login["password"]["name"] == scrape["metadata"]["name"]
    assert scrape["stringData"][login["username"]["key"]] in dict(loaded.users)
    assert login["password"]["key"] in scrape["stringData"]


def test_network_policy_admits_only_the_monitoring_namespace() -> None:
    """Ingress to the pods' metrics port from the monitoring namespace, and from nowhere else."""
    for name in RENDERS:
        objects = render(name)
        policy = one(objects, "NetworkPolicy")
        labels = workload(objects)["spec"]["template"]["metadata"]["labels"]
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        (rule,) = policy["spec"]["ingress"]
        assert rule["from"] == [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ]
        assert rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
