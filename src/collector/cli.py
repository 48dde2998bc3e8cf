"""Command line: argv -> commands, with the exit codes of the contract.

0 success, 1 runtime failure (or a failed probe), 2 bad config or arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Final, NoReturn, TextIO

import orjson

from collector import __version__
from collector.config import (
    DEFAULT_PORT,
    LOG_LEVELS,
    ConfigError,
    HostPort,
    LoadedConfig,
    load_config,
    parse_listen,
    parse_shard,
)

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
SIMULATOR_PORT: Final = DEFAULT_PORT + 1


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


def _shard(text: str) -> object:
    try:
        return parse_shard(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> Parser:
    parser = Parser(
        prog="petra-collector",
        description="Prometheus exporter for Petra Security usage and API-key health.",
        epilog="Example: petra-collector run --config /etc/petra-collector/config.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True

    run = commands.add_parser(
        "run",
        help="run the collector daemon",
        description="Poll every org's /v1/usage and serve /metrics until SIGTERM or SIGINT.",
        epilog="Example: petra-collector run --config config.yaml --listen 0.0.0.0:9865 "
        "--shard 0/3",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--config", required=True, metavar="FILE", help="YAML config file")
    run.add_argument(
        "--listen",
        type=_listen,
        metavar="HOST:PORT",
        help=f"where to serve /metrics (default 127.0.0.1:{DEFAULT_PORT})",
    )
    run.add_argument(
        "--shard",
        type=_shard,
        metavar="I/N",
        help="poll only shard I of N (0 <= I < N); overrides `shard` in the file",
    )
    run.add_argument("--log-format", choices=("json", "console"), help="default: json")
    run.add_argument("--log-level", choices=LOG_LEVELS, help="default: info")

    check = commands.add_parser(
        "check",
        help="validate the config; --probe also calls the API once per org",
        description="Print what the config resolves to (orgs, key sources, key fingerprints; "
        "never keys). Exit 0 all good, 1 a probe failed, 2 bad config.",
        epilog="Example: petra-collector check --config config.yaml --probe",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("--config", required=True, metavar="FILE", help="YAML config file")
    check.add_argument("--probe", action="store_true", help="call /v1/usage once per org")
    check.add_argument("--shard", type=_shard, metavar="I/N", help="check only this shard")
    check.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help="text (default) or json for scripts",
    )

    simulate = commands.add_parser(
        "simulate",
        help="serve a local fake of the Petra API",
        description="A fake Petra API on loopback, for trying the collector without real keys.",
        epilog="Example: petra-collector simulate --orgs 100 --tenants 10 "
        "--write-config ./petra-sim && petra-collector run --config ./petra-sim/config.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    simulate.add_argument(
        "--listen",
        type=_listen,
        default=HostPort("127.0.0.1", SIMULATOR_PORT),
        metavar="HOST:PORT",
        help=f"default 127.0.0.1:{SIMULATOR_PORT}",
    )
    simulate.add_argument("--orgs", type=int, default=3, help="how many orgs to serve (default 3)")
    simulate.add_argument("--tenants", type=int, default=10, help="tenants per org (default 10)")
    simulate.add_argument(
        "--latency-ms", type=float, default=0.0, help="added to every answer (default 0)"
    )
    simulate.add_argument(
        "--write-config",
        type=Path,
        metavar="DIR",
        help="write key files and a collector config.yaml for these orgs",
    )
    simulate.add_argument(
        "--interval",
        type=int,
        default=60,
        help="interval_seconds in the written config (default 60)",
    )

    demo = commands.add_parser(
        "demo",
        help="run the simulator and the collector together, with a few orgs",
        description="Starts a fake Petra API and the collector wired to it; prints the URLs.",
        epilog="Example: petra-collector demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--listen",
        type=_listen,
        default=HostPort("127.0.0.1", DEFAULT_PORT),
        metavar="HOST:PORT",
        help=f"collector (default 127.0.0.1:{DEFAULT_PORT})",
    )
    demo.add_argument(
        "--simulator-listen",
        type=_listen,
        default=HostPort("127.0.0.1", SIMULATOR_PORT),
        metavar="HOST:PORT",
        help=f"fake API (default 127.0.0.1:{SIMULATOR_PORT})",
    )
    demo.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help="stop after this long (default: run until Ctrl-C)",
    )
    demo.add_argument("--log-format", choices=("json", "console"), default="json")
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
    args = build_parser().parse_args(argv)
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
        import uvloop  # noqa: PLC0415 - optional extra; the daemon works without it
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def _run(args: argparse.Namespace) -> int:
    from collector.app import run_daemon  # noqa: PLC0415 - keeps `--help` and `check` fast

    loaded = _load(args.config, sys.stderr)
    if loaded is None:
        return EXIT_USAGE
    overrides = {
        "listen": args.listen,
        "shard": args.shard,
        "log_format": args.log_format,
        "log_level": args.log_level,
    }
    with _event_loop_runner() as runner:
        return runner.run(run_daemon(loaded, config_path=args.config, overrides=overrides))


def _check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from collector.check import describe_config, probe  # noqa: PLC0415 - see _run

    loaded = _load(args.config, err)
    if loaded is None:
        return EXIT_USAGE
    settings = loaded.settings
    if args.shard is not None:
        settings = settings.with_overrides(shard=args.shard)
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=err)
    orgs = describe_config(settings)
    results = asyncio.run(probe(settings)) if args.probe else []
    if args.output == "json":
        document = {
            "config": settings.source,
            "shard": None if settings.shard is None else str(settings.shard),
            "orgs": orgs,
            "probes": [asdict(r) for r in results],
        }
        out.write(orgjson_text(document))
    else:
        _print_check(settings.source, orgs, results, out)
    return EXIT_FAILURE if any(not r.ok for r in results) else EXIT_OK


def orgjson_text(document: object) -> str:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"


def _print_check(
    source: str, orgs: list[dict[str, object]], results: Sequence[object], out: TextIO
) -> None:
    print(f"{source}: OK, {len(orgs)} org(s)", file=out)
    for org in orgs:
        shard_note = "" if org["in_this_shard"] else "  (other shard)"
        print(
            f"  {org['org']}  {org['key_source']}  {org['key_fingerprint']}  "
            f"every {org['interval_seconds']:g} s{shard_note}",
            file=out,
        )
    for result in results:
        print(f"probe {result}", file=out)


def _simulate(args: argparse.Namespace) -> int:
    from collector.simulator import (  # noqa: PLC0415 - see _run
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
