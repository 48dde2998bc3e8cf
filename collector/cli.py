"""Command line: argv -> commands, with the exit codes of the contract.

0 success, 1 runtime failure (or a failed probe), 2 bad config or arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Final, NoReturn, TextIO

import orjson

from collector import __version__
from collector.config import (
    DEFAULT_PORT,
    DEFAULT_TELEMETRY_PATH,
    LOG_LEVELS,
    CliOverrides,
    HostPort,
    LoadedConfig,
    Settings,
    Shard,
    load_config,
    parse_listen,
    parse_shard,
    parse_telemetry_path,
)
from collector.config_reader import ConfigError

if TYPE_CHECKING:
    from collector.web_config import WebConfig

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
SIMULATOR_PORT: Final = DEFAULT_PORT + 1


class HelpFormatter(argparse.HelpFormatter):
    """Wraps prose paragraphs to the terminal; keeps indented blocks (examples) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.split("\n\n"):
            if "\n " in paragraph or paragraph.startswith(" "):
                paragraphs.append("\n".join(indent + line for line in paragraph.splitlines()))
            else:
                paragraphs.append(super()._fill_text(paragraph, width, indent))
        return "\n\n".join(paragraphs)


class Parser(argparse.ArgumentParser):
    """argparse that suggests the closest command or option on a typo."""

    def error(self, message: str) -> NoReturn:
        hint = _suggestion(self, message)
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}{hint}\n")


def _known_words(parser: argparse.ArgumentParser) -> list[str]:
    """Every option and command name, of this parser and its subcommands."""
    words: list[str] = []
    for action in parser._actions:  # noqa: SLF001 - argparse offers no public list of options
        words.extend(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001 - same reason
            for name, subparser in action.choices.items():
                words.append(name)
                words.extend(_known_words(subparser))
    return words


def _suggestion(parser: argparse.ArgumentParser, message: str) -> str:
    words = _known_words(parser)
    for token in message.replace("'", " ").replace(",", " ").split():
        if token in words:
            continue
        close = difflib.get_close_matches(token, words, n=1, cutoff=0.6)
        if close:
            return f" (did you mean {close[0]}?)"
    return ""


def _listen(text: str) -> HostPort:
    try:
        return parse_listen(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _telemetry_path(text: str) -> str:
    try:
        return parse_telemetry_path(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _shard(text: str) -> Shard:
    try:
        return parse_shard(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


TOP_EPILOG: Final = """\
Each command has --help, with examples.

Examples:
  petra-collector demo
  petra-collector check --config config.yaml --probe
  petra-collector run --config /etc/petra-collector/config.yaml

exit codes: 0 success, 1 failure (or a failed probe), 2 bad config or arguments

docs: https://github.com/petra-collector/petra-collector/tree/main/docs
"""


def build_parser() -> Parser:
    parser = Parser(
        prog="petra-collector",
        description="Prometheus exporter for Petra Security usage and API-key health.",
        epilog=TOP_EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {__version__}",
        help="print the version and exit (e.g. petra-collector --version)",
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=Parser, title="commands"
    )
    commands.required = True

    run = commands.add_parser(
        "run",
        help="run the collector daemon",
        description="Poll every org's /v1/usage and serve /metrics, the status page (/), "
        "/api/v1/status, /healthz and /readyz until SIGTERM or SIGINT. SIGHUP or "
        "POST /-/reload reloads the config. Exit 0 after a clean stop, 1 on a failure, "
        "2 for a bad config or arguments.",
        epilog="Examples:\n"
        "  petra-collector run --config config.yaml\n"
        "  petra-collector run --config config.yaml --web.listen-address 0.0.0.0:9865 "
        "--shard 0/3 --log-format console\n"
        "  petra-collector run --config config.yaml --web.listen-address 127.0.0.1:9865 "
        "--web.listen-address [::1]:9865 --web.telemetry-path /internal/metrics",
        formatter_class=HelpFormatter,
    )
    run.add_argument(
        "--config",
        required=True,
        metavar="FILE",
        help="YAML config file, e.g. /etc/petra-collector/config.yaml",
    )
    run.add_argument(
        "--web.listen-address",
        "--listen",
        dest="listen",
        action="append",
        type=_listen,
        metavar="HOST:PORT",
        help=f"where to serve HTTP, overriding server.listen (default 127.0.0.1:{DEFAULT_PORT}); "
        "repeat it to listen on several addresses; --listen is the same option. "
        f"E.g. 0.0.0.0:{DEFAULT_PORT} in a container, :{DEFAULT_PORT} for all interfaces",
    )
    run.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        type=_telemetry_path,
        metavar="PATH",
        help=f"where to serve the metrics, overriding server.telemetry_path (default "
        f"{DEFAULT_TELEMETRY_PATH}), e.g. /internal/metrics",
    )
    run.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="FILE",
        help="web config in the Prometheus exporter-toolkit format (TLS, basic auth, headers), "
        "overriding server.web_config_file; e.g. /etc/petra-collector/web.yml",
    )
    run.add_argument(
        "--shard",
        type=_shard,
        metavar="I/N",
        help="poll only shard I of N (0 <= I < N), overriding `shard` in the file; "
        "e.g. 0/3 on the first of three replicas",
    )
    run.add_argument(
        "--log-format",
        choices=("json", "console"),
        help="json lines (default) or console for people, e.g. --log-format console",
    )
    run.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        help="least severe level logged (default info), e.g. --log-level debug",
    )

    check = commands.add_parser(
        "check",
        help="validate the config; --probe also calls the API once per org",
        description="Print what the config resolves to: orgs, key sources, key fingerprints "
        "(never keys). With --probe, call /v1/usage (and /v1/incidents, when incidents are "
        "enabled, and /v1/billable-users for one tenant, when billing is) once per org of this "
        "shard and show the answer and how long it took. An org fails its probe if any route "
        "fails. A table on a terminal, tab-separated lines with a "
        "header when piped. Exit 0 all good, 1 a probe failed, 2 bad config.",
        epilog="Examples:\n"
        "  petra-collector check --config config.yaml\n"
        "  petra-collector check --config config.yaml --probe\n"
        "  petra-collector check --config config.yaml --probe --output json | "
        "jq '.probes[] | select(.ok | not)'",
        formatter_class=HelpFormatter,
    )
    check.add_argument(
        "--config", required=True, metavar="FILE", help="YAML config file, e.g. config.yaml"
    )
    check.add_argument(
        "--probe",
        action="store_true",
        help="also call /v1/usage once per org (one request of each key's budget), and "
        "/v1/incidents when incidents are enabled, e.g. after replacing a key",
    )
    check.add_argument(
        "--shard",
        type=_shard,
        metavar="I/N",
        help="check and probe only shard I of N, e.g. 1/3",
    )
    check.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="FILE",
        help="also validate this web config (default: server.web_config_file), e.g. web.yml",
    )
    check.add_argument(
        "--output",
        choices=("auto", "table", "tsv", "json"),
        default="auto",
        help="auto (default): a table on a terminal, tsv when piped; "
        "e.g. --output json for scripts",
    )

    simulate = commands.add_parser(
        "simulate",
        help="serve a local fake of the Petra API",
        description="A fake Petra API on loopback, for trying the collector without real "
        "keys: known keys get a generated report, unknown keys 401, too many requests 429.",
        epilog="Examples:\n"
        "  petra-collector simulate --orgs 100 --tenants 10 --write-config ./petra-sim\n"
        "  petra-collector run --config ./petra-sim/config.yaml",
        formatter_class=HelpFormatter,
    )
    simulate.add_argument(
        "--listen",
        type=_listen,
        default=HostPort("127.0.0.1", SIMULATOR_PORT),
        metavar="HOST:PORT",
        help=f"where the fake API listens (default 127.0.0.1:{SIMULATOR_PORT}), "
        "e.g. 127.0.0.1:9000",
    )
    simulate.add_argument(
        "--orgs", type=int, default=3, metavar="N", help="how many orgs to serve (default 3)"
    )
    simulate.add_argument(
        "--tenants", type=int, default=10, metavar="N", help="tenants per org (default 10)"
    )
    simulate.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="added to every answer (default 0), e.g. 250",
    )
    simulate.add_argument(
        "--write-config",
        type=Path,
        metavar="DIR",
        help="write key files and a collector config.yaml for these orgs, e.g. ./petra-sim",
    )
    simulate.add_argument(
        "--interval",
        type=int,
        default=60,
        metavar="SECONDS",
        help="interval_seconds in the written config (default 60)",
    )

    demo = commands.add_parser(
        "demo",
        help="run the simulator and the collector together, with a few orgs",
        description="Starts a fake Petra API and the collector wired to it, with a few orgs: "
        "one whose key is rejected, one that gets rate-limited now and then. Prints the URLs "
        "to open. No config file needed.",
        epilog="Examples:\n"
        "  petra-collector demo\n"
        "  petra-collector demo --listen 127.0.0.1:8080 --duration 60",
        formatter_class=HelpFormatter,
    )
    demo.add_argument(
        "--listen",
        type=_listen,
        default=HostPort("127.0.0.1", DEFAULT_PORT),
        metavar="HOST:PORT",
        help=f"the collector (default 127.0.0.1:{DEFAULT_PORT}), e.g. 127.0.0.1:8080",
    )
    demo.add_argument(
        "--simulator-listen",
        type=_listen,
        default=HostPort("127.0.0.1", SIMULATOR_PORT),
        metavar="HOST:PORT",
        help=f"the fake API (default 127.0.0.1:{SIMULATOR_PORT}), e.g. 127.0.0.1:8081",
    )
    demo.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help="stop after this long (default: run until Ctrl-C), e.g. 60",
    )
    demo.add_argument(
        "--log-format",
        choices=("json", "console"),
        default="json",
        help="json lines (default) or console, e.g. --log-format console",
    )
    return parser


def _load(path: str, err: TextIO) -> LoadedConfig | None:
    try:
        return load_config(path)
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=err)
        print(f"config rejected: {len(error.problems)} problem(s)", file=err)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        return EXIT_OK


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        return _run(args)
    if args.command == "check":
        return _check(args, sys.stdout, sys.stderr)
    if args.command == "simulate":
        return _simulate(args)
    return _demo(args)


def _event_loop_runner() -> asyncio.Runner:
    try:
        import uvloop  # noqa: PLC0415 - no wheel on some platforms (pyproject.toml); works without
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def _load_web(settings: Settings, err: TextIO) -> tuple[bool, WebConfig | None]:
    """(loaded fine, the web config or None when there is none); problems go to `err`."""
    from collector.web_config import load_web_config  # noqa: PLC0415 - builds TLS contexts

    path = settings.server.web_config_file
    if path is None:
        return True, None
    try:
        return True, load_web_config(path)
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=err)
        print(f"web config rejected: {len(error.problems)} problem(s)", file=err)
        return False, None


def _web_config_file(args: argparse.Namespace) -> str | None:
    given: str | None = getattr(args, "web_config_file", None)
    return None if given is None else str(Path(given).absolute())


def _run(args: argparse.Namespace) -> int:
    from collector.app import run_daemon  # noqa: PLC0415 - keeps `--help` and `check` fast

    loaded = _load(args.config, sys.stderr)
    if loaded is None:
        return EXIT_USAGE
    overrides = CliOverrides(
        listen=None if args.listen is None else tuple(args.listen),
        telemetry_path=args.telemetry_path,
        shard=args.shard,
        log_format=args.log_format,
        log_level=args.log_level,
        web_config_file=_web_config_file(args),
    )
    ok, web_config = _load_web(overrides.apply(loaded.settings), sys.stderr)
    if not ok:
        return EXIT_USAGE
    with _event_loop_runner() as runner:
        return runner.run(
            run_daemon(loaded, config_path=args.config, overrides=overrides, web_config=web_config)
        )


def _check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from collector.check import describe_config, probe, render_check  # noqa: PLC0415 - see _run

    loaded = _load(args.config, err)
    if loaded is None:
        return EXIT_USAGE
    settings = CliOverrides(shard=args.shard, web_config_file=_web_config_file(args)).apply(
        loaded.settings
    )
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=err)
    ok, web_config = _load_web(settings, err)
    if not ok:
        return EXIT_USAGE
    if web_config is not None:
        print(f"web config {web_config.describe()}", file=err)
    orgs = describe_config(settings)
    shard = None if settings.shard is None else str(settings.shard)
    if args.probe and args.output != "json" and _is_terminal(err):
        print(f"probing {sum(1 for o in orgs if o.in_this_shard)} org(s)...", file=err)
    results = asyncio.run(probe(settings)) if args.probe else []
    if args.output == "json":
        document = {
            "config": settings.source,
            "shard": shard,
            "copies": settings.sharding.copies,
            "orgs": [asdict(o) for o in orgs],
            "probes": [asdict(r) for r in results],
        }
        out.write(orgjson_text(document))
    else:
        table = args.output == "table" or (args.output == "auto" and _is_terminal(out))
        out.write(
            render_check(
                settings.source,
                shard,
                orgs,
                results,
                style="table" if table else "tsv",
                colour=table and _is_terminal(out) and _colour_wanted(),
            )
        )
    return EXIT_FAILURE if any(not r.ok for r in results) else EXIT_OK


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream is no terminal
        return False


def _colour_wanted() -> bool:
    """Colour unless NO_COLOR is set (https://no-color.org) or the terminal is dumb."""
    return not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def orgjson_text(document: object) -> str:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"


def _simulate(args: argparse.Namespace) -> int:
    from collector.petra_simulator import (  # noqa: PLC0415 - see _run
        Simulator,
        bench_orgs,
        run_simulator,
        write_bench_config,
    )

    orgs = bench_orgs(args.orgs, args.tenants)
    sim = Simulator(orgs, latency_seconds=args.latency_ms / 1000.0)
    listen: HostPort = args.listen
    if args.write_config is not None:
        base_url = f"http://{listen.host}:{listen.port}"
        path = write_bench_config(orgs, args.write_config, base_url, args.interval)
        print(f"wrote {path}", file=sys.stderr)
    print(f"fake Petra API on http://{listen}/v1/usage ({len(orgs)} orgs)", file=sys.stderr)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        import signal  # noqa: PLC0415 - only the long-running commands handle signals

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_simulator(sim, listen.host, listen.port, stop)

    try:
        asyncio.run(serve())
    except OSError as error:
        print(f"simulate: cannot listen on {listen}: {error.strerror or error}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from collector.demo import run_demo  # noqa: PLC0415 - see _run

    return asyncio.run(
        run_demo(
            args.listen, args.simulator_listen, duration=args.duration, log_format=args.log_format
        )
    )
