"""The web config file: what it accepts, and a message naming file and path for what it does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.config_reader import ConfigError
from collector.web_config import load_web_config
from tests.leaks import assert_no_key_material
from tests.webtls import TlsFiles, bcrypt_hash, write_web_config

PASTED_KEY = "petra_var_0123456789abcdef0123456789"


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_web_config(path)
    return raised.value.problems


def test_full_file_with_relative_paths_loads(tmp_path: Path) -> None:
    files = TlsFiles(tmp_path / "tls")
    hashed = bcrypt_hash("secret")
    path = write_web_config(
        tmp_path / "tls" / "web.yaml",
        tls=files.tls_section("RequireAndVerifyClientCert", min_version="TLS13"),
        users={"prometheus": hashed},
        headers={"Strict-Transport-Security": "max-age=31536000", "X-Frame-Options": "sameorigin"},
    )
    config = load_web_config(path)
    assert config.tls is not None
    assert config.tls.cert_file == str(files.cert_file)  # relative to the web config file
    assert config.tls.client_ca_file == str(files.client_ca_file)
    assert config.tls.min_version == "TLS13"
    assert config.users == (("prometheus", hashed),)
    assert dict(config.headers)["X-Frame-Options"] == "sameorigin"
    assert config.ssl_context is not None
    assert set(config.files()) == {
        str(path),
        str(files.cert_file),
        str(files.key_file),
        str(files.client_ca_file),
    }


def test_the_repr_shows_no_password_hash(tmp_path: Path) -> None:
    hashed = bcrypt_hash("secret")
    config = load_web_config(write_web_config(tmp_path / "web.yaml", users={"prometheus": hashed}))
    assert config.users == (("prometheus", hashed),)
    assert hashed not in repr(config)


def test_empty_file_means_no_tls_and_no_users(tmp_path: Path) -> None:
    path = tmp_path / "web.yaml"
    path.write_text("")
    config = load_web_config(path)
    assert (config.tls, config.users, config.headers, config.ssl_context) == (None, (), (), None)


def test_every_problem_is_named_with_file_and_path(tmp_path: Path) -> None:
    path = tmp_path / "web.yaml"
    path.write_text(
        "tls_server_config:\n"
        "  cert_file: missing.crt\n"
        "  client_auth_type: RequireClientCertPlease\n"
        "  min_version: TLS14\n"
        "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n"
        "  zz_typo: 1\n"
        "http_server_config:\n"
        "  headers:\n"
        "    Server: petra\n"
        "    X-Frame-Options: allow-from\n"
        "basic_auth_users:\n"
        "  prometheus: hunter2\n"
        "zz_unknown: 1\n"
    )
    found = problems(path)
    source = str(path)
    expected = [
        "tls_server_config.cert_file: " + str(tmp_path / "missing.crt") + ": not found",
        "tls_server_config.key_file: is missing",
        (
            "tls_server_config.client_auth_type: must be one of NoClientCert, "
            "VerifyClientCertIfGiven, RequireAndVerifyClientCert, not 'RequireClientCertPlease'"
        ),
        "tls_server_config.min_version: must be one of TLS10, TLS11, TLS12, TLS13, not 'TLS14'",
        "tls_server_config.cipher_suites: is not supported",
        "tls_server_config.zz_typo: unknown key",
        "http_server_config.headers.Server: cannot be configured",
        "http_server_config.headers.X-Frame-Options: must be one of deny, sameorigin",
        "basic_auth_users.prometheus: is not a bcrypt hash",
        "zz_unknown: unknown key",
    ]
    for fragment in expected:
        assert any(p.startswith(f"{source}: ") and fragment in p for p in found), (fragment, found)
    assert not any("hunter2" in p for p in found), "a plain password is never echoed"


def test_a_key_pasted_as_a_hash_or_a_user_is_never_echoed(tmp_path: Path) -> None:
    path = tmp_path / "web.yaml"
    path.write_text(f"basic_auth_users:\n  prometheus: {PASTED_KEY}\n  {PASTED_KEY}: x\n")
    found = problems(path)
    assert len(found) == 2
    assert_no_key_material([PASTED_KEY], *found)


@pytest.mark.parametrize("policy", ["RequestClientCert", "RequireAnyClientCert"])
def test_policies_that_check_no_certificate_are_refused(tmp_path: Path, policy: str) -> None:
    """Go's two policies that take any certificate: refused, naming file, path and what is
    offered; the CA file beside them draws no second, misleading problem."""
    files = TlsFiles(tmp_path)
    section = files.tls_section(policy) | {"client_ca_file": files.client_ca_file.name}
    path = write_web_config(tmp_path / "web.yaml", tls=section)
    refused = (
        f"{path}: tls_server_config.client_auth_type: {policy} is refused: it takes a client "
        "certificate without checking it (exporter-toolkit calls it insecure; Go gives it a "
        "meaning only with client_allowed_sans, which is not supported); use one of "
        "NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
    )
    assert problems(path) == [refused]


def test_client_ca_without_a_client_auth_policy_is_an_error(tmp_path: Path) -> None:
    files = TlsFiles(tmp_path)
    section = files.tls_section() | {"client_ca_file": files.client_ca_file.name}
    found = problems(write_web_config(tmp_path / "web.yaml", tls=section))
    assert any("client_ca_file: is set but client_auth_type is NoClientCert" in p for p in found)


def test_max_version_below_min_version_is_an_error(tmp_path: Path) -> None:
    files = TlsFiles(tmp_path)
    section = files.tls_section(min_version="TLS13", max_version="TLS12")
    found = problems(write_web_config(tmp_path / "web.yaml", tls=section))
    assert any("max_version: TLS12 is below min_version TLS13" in p for p in found)


def test_a_key_that_does_not_match_the_certificate_is_an_error(tmp_path: Path) -> None:
    files = TlsFiles(tmp_path)
    other = TlsFiles(tmp_path / "other")
    section = files.tls_section() | {"key_file": str(other.key_file)}
    (problem,) = problems(write_web_config(tmp_path / "web.yaml", tls=section))
    assert problem.startswith(f"{tmp_path / 'web.yaml'}: tls_server_config: cert_file ")
    assert "are not a certificate and its private key" in problem


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("tls_server_config: [1]\n", "tls_server_config: must be a mapping, not a list"),
        ("a: 1\na: 2\n", "line 2, column 1: invalid YAML: key 'a' appears twice"),
        ("http_server_config:\n  http2: yes please\n", "http_server_config.http2: must be true"),
        ("basic_auth_users: [prometheus]\n", "basic_auth_users: must be a mapping, not a list"),
    ],
)
def test_malformed_sections(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "web.yaml"
    path.write_text(text)
    (problem,) = problems(path)
    assert problem.startswith(str(path)), problem
    assert fragment in problem, problem


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.yaml") == [f"{tmp_path / 'nope.yaml'}: file not found"]
