"""The YAML reading helpers, on their own and for a file other than the main config."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.config_reader import (
    ConfigError,
    Problems,
    Section,
    parse_yaml,
    read_text,
    shown,
    type_name,
)

KEY_SHAPED = "petra_" + "Ab1" * 8


def _errors(source: str, text: str) -> list[str]:
    """Read `text` with a small web-config-like schema; return the problems found."""
    problems = Problems(source)
    top = Section(problems, "", parse_yaml(text, source))
    tls = top.section("tls_server_config")
    tls.string("cert_file", "")
    tls.string("key_file", "")
    tls.finish()
    http = top.section("http_server_config")
    http.number("max_connections", 10, integer=True)
    http.finish()
    top.value("basic_auth_users")
    top.finish()
    return problems.errors


def test_a_second_file_gets_its_own_source_and_paths() -> None:
    """Problems name the file they came from and the path inside it, nested sections too."""
    errors = _errors(
        "web.yml",
        "tls_server_config: {cert_file: 5, key_fil: k}\n"
        "http_server_config: {max_connections: 2.5}\n"
        "extra: 1\n",
    )
    assert errors == [
        "web.yml: tls_server_config.cert_file: must be a non-empty string, not a number",
        "web.yml: tls_server_config.key_fil: unknown key (known here: cert_file, key_file)",
        "web.yml: http_server_config.max_connections: must be a whole number, got 2.5",
        (
            "web.yml: extra: unknown key "
            "(known here: basic_auth_users, http_server_config, tls_server_config)"
        ),
    ]


def test_an_empty_file_and_null_sections_are_all_defaults() -> None:
    """Nothing given is not a problem: every getter returns its default."""
    assert _errors("web.yml", "") == []
    assert _errors("web.yml", "tls_server_config:\nhttp_server_config: null\n") == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("true", "must be a number, not a boolean"),
        (".inf", "must be a finite number, got inf"),
        ("0", "must be greater than 0, got 0"),
        ("-3", "must be greater than 0, got -3"),
        ("[1]", "must be a number, not a list"),
    ],
)
def test_numbers_are_finite_and_positive(value: str, message: str) -> None:
    problems = Problems("f.yaml")
    section = Section(problems, "s", parse_yaml(f"n: {value}\n", "f.yaml"))
    assert section.number("n", 7.0) == 7.0  # a bad value falls back to the default
    assert problems.errors == [f"f.yaml: s.n: {message}"]


def test_strings_are_stripped_and_a_non_mapping_section_is_reported() -> None:
    problems = Problems("f.yaml")
    assert Section(problems, "", {"s": "  x  "}).string("s", "d") == "x"
    Section(problems, "polling", [1, 2])
    assert problems.errors == ["f.yaml: polling: must be a mapping, not a list"]


def test_a_key_written_twice_is_rejected_with_its_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_yaml("a: 1\nb: 2\na: 3\n", "f.yaml")
    assert caught.value.problems == [
        "f.yaml: line 3, column 1: invalid YAML: key 'a' appears twice in one mapping"
    ]


def test_invalid_yaml_names_line_and_column() -> None:
    with pytest.raises(ConfigError, match=r"^f\.yaml: line 2, column 5: invalid YAML: "):
        parse_yaml("a: 1\nb:  : c\n", "f.yaml")


def test_a_key_shaped_value_is_never_echoed() -> None:
    """As an unknown key, a duplicated key, or through `shown`."""
    assert KEY_SHAPED not in shown(KEY_SHAPED)
    problems = Problems("f.yaml")
    Section(problems, "", {KEY_SHAPED: 1}).finish()
    assert problems.errors
    assert KEY_SHAPED not in problems.errors[0]
    with pytest.raises(ConfigError) as caught:
        parse_yaml(f"{KEY_SHAPED}: 1\n{KEY_SHAPED}: 2\n", "f.yaml")
    assert KEY_SHAPED not in str(caught.value)


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    """Missing, a directory, not UTF-8: one problem naming the file."""
    (tmp_path / "latin1.yaml").write_bytes(b"name: Z\xfcrich\n")
    cases = {
        tmp_path / "missing.yaml": "file not found",
        tmp_path: "is a directory, not a config file",
        tmp_path / "latin1.yaml": "is not UTF-8 text",
    }
    for path, message in cases.items():
        with pytest.raises(ConfigError) as caught:
            read_text(path)
        assert caught.value.problems == [f"{path}: {message}"]


def test_problems_raise_only_when_there_are_errors() -> None:
    problems = Problems("f.yaml")
    problems.warn("a", "only a warning")
    problems.raise_errors()
    problems.error("", "broken")
    with pytest.raises(ConfigError, match=r"^f\.yaml: broken$"):
        problems.raise_errors()
    assert problems.warnings == ["f.yaml: a: only a warning"]


def test_type_names_read_as_words() -> None:
    values: list[object] = [None, True, 1, 1.5, "s", [], {}]
    assert [type_name(value) for value in values] == [
        "null",
        "a boolean",
        "a number",
        "a number",
        "a string",
        "a list",
        "a mapping",
    ]
