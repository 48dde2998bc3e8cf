"""What `check` prints: an aligned table on a terminal, TSV when piped, JSON for scripts."""

from __future__ import annotations

import argparse
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Final

import pytest

from collector.check import OrgSummary, ProbeResult, probe_answer, render_check
from collector.cli import EXIT_OK, EXIT_USAGE, _check, build_parser, main
from collector.state_records import Health
from tests.leaks import assert_no_key_material

UNIT_TEST_KEY: Final = "petra_unit_test_key_0123456789"

ORGS: Final = [
    OrgSummary(
        "acme", "file /run/secrets/petra/acme", "sha256:0123456789ab", 300.0, in_this_shard=True
    ),
    OrgSummary(
        "umbrella-corporation",
        "env $PETRA_KEY_UMBRELLA",
        "sha256:ba9876543210",
        120.0,
        in_this_shard=True,
    ),
    OrgSummary(
        "initech", "inline in the config file", "sha256:aaaaaaaaaaaa", 60.5, in_this_shard=True
    ),
    OrgSummary("globex", "file keys/globex", "sha256:cccccccccccc", 300.0, in_this_shard=False),
]
RESULTS: Final = [
    ProbeResult("acme", True, Health.OK, "Acme MSP: 4 tenants", 0.213, 4, None, "Acme MSP"),
    ProbeResult(
        "umbrella-corporation",
        False,
        Health.AUTH_FAILED,
        "key rejected (401): Invalid API key",
        0.05,
    ),
    ProbeResult(
        "initech",
        False,
        Health.RATE_LIMITED,
        "rate limited (429), retry after 30 s",
        0.02,
        None,
        30.0,
    ),
]


def test_probe_answers_say_what_the_api_said() -> None:
    """OK with the tenant count, each failure by name, the wait of a 429."""
    answers = [probe_answer(r) for r in RESULTS]
    assert answers == ["OK, 4 tenants", "KEY REJECTED", "RATE LIMITED, retry in 30 s"]
    one = ProbeResult("x", True, Health.OK, "", 0.1, 1)
    assert probe_answer(one) == "OK, 1 tenant"
    no_wait = ProbeResult("x", False, Health.RATE_LIMITED, "", 0.1)
    assert probe_answer(no_wait) == "RATE LIMITED, no wait given"
    for outcome, label in ((Health.FORBIDDEN, "FORBIDDEN"), (Health.ERROR, "ERROR")):
        assert probe_answer(ProbeResult("x", False, outcome, "", 0.1)) == label


def test_table_columns_line_up_with_a_summary() -> None:
    """Every column starts at the same place on every line; failures are summed up."""
    text = render_check("config.yaml", "0/2", ORGS, RESULTS, style="table")
    lines = text.splitlines()
    assert lines[0] == "config.yaml: valid, 4 org(s) (shard 0/2: 3 polled here)"
    header, *rows = lines[2:7]
    for title in ("KEY SOURCE", "KEY FINGERPRINT", "EVERY", "SHARD", "PROBE", "TIME", "DETAIL"):
        column = header.index(title)
        for row in rows:
            assert row[column - 2 : column] == "  ", f"{title} misaligned in {row!r}"
            assert row[column] != " " or title == "TIME", f"{title} empty in {row!r}"
    assert "OK, 4 tenants" in rows[0]
    assert "0.21 s" in rows[0]
    assert "Acme MSP" in rows[0]
    assert "RATE LIMITED, retry in 30 s" in rows[2]
    assert "60.5 s" in rows[2]
    assert "other" in rows[3]
    assert "another shard polls it" in rows[3]
    assert lines[-1] == (
        "2 of 3 probe(s) failed: umbrella-corporation (KEY REJECTED), initech (RATE LIMITED)"
    )
    assert "\x1b[" not in text


def test_sharded_rows_name_the_shards_that_poll_each_org() -> None:
    """With copies, the table says how many and each row lists its org's shards; TSV carries
    them in a last `shards` column, after the ones scripts already cut."""
    sharded = [
        replace(ORGS[0], shards=(0, 2)),
        replace(ORGS[3], in_this_shard=False, shards=(1, 2)),
    ]
    table = render_check("config.yaml", "0/3", sharded, [], style="table").splitlines()
    assert table[0] == "config.yaml: valid, 2 org(s) (shard 0/3, 2 copies: 1 polled here)"
    assert table[3].endswith("this (0, 2)")
    assert table[4].endswith("other (1, 2)")
    tsv = [
        line.split("\t") for line in render_check("c", "0/3", sharded, [], style="tsv").splitlines()
    ]
    assert tsv[0][4:] == ["in_this_shard", "shards"]
    assert [row[4:] for row in tsv[1:]] == [["yes", "0,2"], ["no", "1,2"]]


def test_table_without_probe_or_shard_is_narrow() -> None:
    """No probe and no shard: only the config columns."""
    text = render_check("config.yaml", None, ORGS[:1], [], style="table")
    assert text.splitlines()[2].split() == ["ORG", "KEY", "SOURCE", "KEY", "FINGERPRINT", "EVERY"]
    assert "all polled by this instance" in text


def test_colour_marks_only_the_probe_answer() -> None:
    """Green for OK, red for a rejected key, yellow for a rate limit; padding stays outside."""
    text = render_check("config.yaml", None, ORGS[:3], RESULTS, style="table", colour=True)
    assert "\x1b[32mOK, 4 tenants" in text
    assert "\x1b[31mKEY REJECTED" in text
    assert "\x1b[33mRATE LIMITED" in text


def test_tsv_is_one_line_per_org_with_a_header() -> None:
    """Piped output: a header, then tab-separated fields scripts can cut, no decoration."""
    text = render_check("config.yaml", None, ORGS, RESULTS, style="tsv")
    lines = [line.split("\t") for line in text.splitlines()]
    assert lines[0] == [
        "org",
        "key_source",
        "key_fingerprint",
        "interval_seconds",
        "in_this_shard",
        "outcome",
        "answer",
        "seconds",
        "detail",
    ]
    assert all(len(line) == 9 for line in lines)
    assert lines[1] == [
        "acme",
        "file /run/secrets/petra/acme",
        "sha256:0123456789ab",
        "300",
        "yes",
        "ok",
        "OK, 4 tenants",
        "0.213",
        "Acme MSP",
    ]
    assert lines[4][:6] == [
        "globex",
        "file keys/globex",
        "sha256:cccccccccccc",
        "300",
        "no",
        "-",
    ]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "table"), [(io.StringIO(), False), (Terminal(), True)], ids=["piped", "terminal"]
)
def test_auto_output_picks_table_on_a_terminal(
    tmp_path: Path, stream: io.StringIO, table: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--output auto` gives a table to a terminal and TSV to a pipe."""
    monkeypatch.setenv("NO_COLOR", "1")
    key = tmp_path / "acme.key"
    key.write_text(UNIT_TEST_KEY + "\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"orgs:\n  - name: acme\n    api_key_file: {key}\n")
    args = build_parser().parse_args(["check", "--config", str(config)])
    assert _check(args, stream, io.StringIO()) == EXIT_OK
    first = stream.getvalue().splitlines()[0]
    if table:
        assert first == f"{config}: valid, 1 org(s) (all polled by this instance)"
    else:
        assert first.split("\t")[0] == "org"
    assert_no_key_material([UNIT_TEST_KEY], stream.getvalue())


def test_json_output_keeps_its_shape(tmp_path: Path) -> None:
    """--output json: config, shard, orgs and probes, for scripts."""
    key = tmp_path / "acme.key"
    key.write_text("petra_unit_test_key_0123456789\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"orgs:\n  - name: acme\n    api_key_file: {key}\n")
    out = io.StringIO()
    args = build_parser().parse_args(["check", "--config", str(config), "--output", "json"])
    assert _check(args, out, io.StringIO()) == EXIT_OK
    document = json.loads(out.getvalue())
    assert set(document) == {"config", "shard", "copies", "orgs", "probes"}
    assert document["copies"] == 1
    assert document["orgs"][0]["org"] == "acme"
    assert document["probes"] == []


def test_bad_config_exits_2(tmp_path: Path) -> None:
    """A config with a problem prints it on stderr and exits 2."""
    config = tmp_path / "config.yaml"
    config.write_text("orgs: []\n")
    err = io.StringIO()
    args = build_parser().parse_args(["check", "--config", str(config)])
    assert _check(args, io.StringIO(), err) == EXIT_USAGE
    assert "orgs: is empty" in err.getvalue()


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # noqa: SLF001 - argparse has no public list of commands
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001 - same reason
            return dict(action.choices)
    raise AssertionError("no subcommands")


def test_every_command_and_option_explains_itself() -> None:
    """Each command has a description and examples; each option has help text."""
    parser = build_parser()
    commands = subparsers(parser)
    assert set(commands) == {"run", "check", "simulate", "demo"}
    assert "Examples:" in (parser.epilog or "")
    for name, command in commands.items():
        assert command.description, name
        assert f"petra-collector {name}" in (command.epilog or ""), name
        for action in command._actions:  # noqa: SLF001 - as above
            if isinstance(action, argparse._HelpAction):  # noqa: SLF001 - as above
                continue
            assert action.help, f"{name} {action.option_strings} has no help"
            assert len(action.help) > 10, f"{name} {action.option_strings}: {action.help!r}"


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["chek"], "did you mean check?"),  # codespell:ignore chek - the typo is the test
        (["simulat"], "did you mean simulate?"),
        (["check", "--config", "x", "--outptu", "json"], "did you mean --output?"),
        (["run", "--config", "x", "--lisen", ":1"], "did you mean --listen?"),
    ],
)
def test_typos_get_the_close_match(
    argv: list[str], hint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown command or option suggests the closest known one, and exits 2."""
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(argv)
    assert stopped.value.code == EXIT_USAGE
    assert hint in capsys.readouterr().err


def test_no_command_prints_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    """Run with nothing, the command shows its help (with examples) and exits 2."""
    assert main([]) == EXIT_USAGE
    assert "Examples:" in capsys.readouterr().err
