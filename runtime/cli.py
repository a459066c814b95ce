"""The `a3s-gateway` command line.

    a3s-gateway run --config gateway.hcl [--watch] [--workers N|auto] [--backend asyncio|trio]
    a3s-gateway compile --check PATH...            exit 0 valid, 1 errors, 2 usage
        [--env NAME] [--explain-env] [--provider-snapshot DIR]
    a3s-gateway compile --emit ir PATH...          the IR as canonical JSON
    a3s-gateway graph --dot PATH... [--provider-snapshot DIR]   Graphviz DOT
    a3s-gateway providers dump --config PATH... --out DIR       save what the providers give now
    a3s-gateway route --config PATH [--entrypoint NAME] METHOD URL [-H 'Name: value']... [--client-ip IP]
    a3s-gateway route --config PATH --tcp [--sni NAME | --tls] [--alpn P]... [--client-ip IP]
    a3s-gateway status --api URL [--user NAME:PASSWORD]  a running gateway's health, routers, backends
    a3s-gateway reload --api URL [--user NAME:PASSWORD]  exit 0 reloaded, 1 rejected (diagnostics)
    a3s-gateway demo-backend --port N

Every failure is a message and an exit code, never a Python traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence

from ..compiler import CompileResult, Diagnostics, compile_config, render_json, render_text
from ..compiler.env_overrides import explain
from ..compiler.fragment import read_snapshot
from ..compiler.overlay import ENV_VARIABLE
from ..compiler.render import to_dot
from ..compiler.request_target import BadTarget
from ..compiler.route import (
    HttpProbe,
    MatchHeaders,
    TcpProbe,
    describe,
    entrypoint_paths,
    route_http,
    route_tcp,
)

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 70


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # the last line of defence: a message, not a traceback
        logging.getLogger("a3s_gateway").debug("internal error", exc_info=True)
        print(f"a3s-gateway: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INTERNAL


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="a3s-gateway", description="The traffic layer for AI-native services."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="serve traffic")
    run.add_argument(
        "--config", "-c", action="append", required=True, metavar="PATH", help="file or directory"
    )
    run.add_argument("--watch", action="store_true", help="reload when the config files change")
    run.add_argument("--workers", default="1", help="worker processes (a number or 'auto')")
    run.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    run.add_argument(
        "--http1",
        choices=["h11", "fast"],
        default=None,
        help="the HTTP/1.1 adapter: fast (llhttp, the default when httptools is installed) or h11",
    )
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=None)
    _env_flag(run)
    run.set_defaults(func=_run)

    comp = sub.add_parser("compile", help="validate a configuration or print its IR")
    comp.add_argument("paths", nargs="+", metavar="PATH")
    mode = comp.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="only validate (the default)")
    mode.add_argument("--emit", choices=["ir"], help="print the compiled IR as JSON")
    comp.add_argument(
        "--explain-env", action="store_true", help="list what each GATEWAY_ environment variable sets"
    )
    _env_flag(comp)
    _snapshot_flag(comp)
    _output_flags(comp)
    comp.set_defaults(func=_compile)

    graph = sub.add_parser("graph", help="print the compiled graph")
    graph.add_argument("paths", nargs="+", metavar="PATH")
    graph.add_argument("--dot", action="store_true", help="Graphviz DOT (the default)")
    _env_flag(graph)
    _snapshot_flag(graph)
    _output_flags(graph)
    graph.set_defaults(func=_graph)

    route = sub.add_parser("route", help="dry run: which router takes a request")
    route.add_argument("--config", "-c", action="append", required=True, metavar="PATH")
    route.add_argument("--entrypoint")
    route.add_argument("--tcp", action="store_true", help="route a TCP connection instead")
    route.add_argument("--sni", help="the server name of a TLS client (implies --tls)")
    route.add_argument(
        "--tls", action="store_true", help="a TLS client (without --sni: one that sends no SNI)"
    )
    route.add_argument("--alpn", action="append", default=[])
    route.add_argument("-H", "--header", action="append", default=[], metavar="'Name: value'")
    route.add_argument("--client-ip", default="127.0.0.1")
    route.add_argument("request", nargs="*", metavar="METHOD URL")
    _env_flag(route)
    _output_flags(route)
    route.set_defaults(func=_route)

    # Their code (the admin API client) is imported when used, as `run`'s is: `compile` loads no runtime.
    status = sub.add_parser("status", help="show a running gateway's health, routers, backends, scalers")
    _api_flags(status)
    status.set_defaults(func=_status)
    reload = sub.add_parser("reload", help="make a running gateway re-read its configuration")
    _api_flags(reload)
    reload.set_defaults(func=_reload)

    providers = sub.add_parser("providers", help="the configuration providers give (docs/providers.md)")
    verbs = providers.add_subparsers(dest="verb", metavar="VERB", required=True)
    dump = verbs.add_parser("dump", help="write what each provider gives now, as a snapshot directory")
    dump.add_argument("--config", "-c", action="append", required=True, metavar="PATH")
    dump.add_argument("--out", required=True, metavar="DIR", help="the snapshot directory to write")
    dump.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="per provider")
    _env_flag(dump)
    _output_flags(dump)
    dump.set_defaults(func=_providers_dump)

    demo = sub.add_parser("demo-backend", help="a built-in OpenAI-compatible demo model server")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8001)
    demo.add_argument("--token-delay", type=float, default=0.05, metavar="SECONDS")
    demo.set_defaults(func=_demo)
    return parser


def _env_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--env",
        metavar="NAME",
        help="lay <file>.NAME.hcl over each config file (as GATEWAY_ENV=NAME does)",
    )


def _snapshot_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--provider-snapshot",
        metavar="DIR",
        help="merge the provider fragments saved in DIR (by `providers dump`)",
    )


def _apply_env(args: argparse.Namespace) -> None:
    """`--env NAME` is GATEWAY_ENV=NAME for this process and the workers it starts."""
    if getattr(args, "env", None):
        os.environ[ENV_VARIABLE] = args.env


def _compile_args(args: argparse.Namespace, paths: Sequence[str]) -> CompileResult:
    """Compile `paths` with `--env` and `--provider-snapshot` applied."""
    _apply_env(args)
    snapshot = getattr(args, "provider_snapshot", None)
    if snapshot is None:
        return compile_config(paths)
    diags = Diagnostics()
    fragments = read_snapshot(snapshot, diags)
    result = compile_config(paths, None, fragments)
    if len(diags):  # the snapshot could not be read: its problems too
        result.diagnostics.extend(diags)
        return dataclasses.replace(result, graph=None if diags.has_errors else result.graph)
    return result


def _output_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.add_argument("--color", choices=["auto", "always", "never"], default="auto")


def _api_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api", required=True, metavar="URL", help="the admin API, e.g. http://127.0.0.1:9090"
    )
    parser.add_argument("--user", metavar="NAME:PASSWORD", help="basic-auth credentials for the API")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")
    _output_flags(parser)


def _use_color(args: argparse.Namespace) -> bool:
    if args.color == "auto":
        return sys.stderr.isatty() and "NO_COLOR" not in os.environ
    return bool(args.color == "always")


def _report(args: argparse.Namespace, result: object) -> None:
    diagnostics = getattr(result, "diagnostics")  # noqa: B009 - CompileResult
    if args.format == "json":
        print(render_json(diagnostics))
    elif len(diagnostics):
        print(render_text(diagnostics, getattr(result, "sources"), color=_use_color(args)), file=sys.stderr)  # noqa: B009


def _compile(args: argparse.Namespace) -> int:
    result = _compile_args(args, args.paths)
    if args.explain_env:
        print(explain(list(result.overrides)))
    if args.emit == "ir" and result.graph is not None:
        if len(result.diagnostics):
            print(render_text(result.diagnostics, result.sources, color=_use_color(args)), file=sys.stderr)
        print(result.graph.to_json())
        return EXIT_OK
    _report(args, result)
    return EXIT_OK if result.graph is not None else EXIT_ERRORS


def _graph(args: argparse.Namespace) -> int:
    result = _compile_args(args, args.paths)
    if result.graph is None:
        _report(args, result)
        return EXIT_ERRORS
    sys.stdout.write(to_dot(result.graph))
    return EXIT_OK


def _route(args: argparse.Namespace) -> int:
    result = _compile_args(args, args.config)
    if result.graph is None:
        _report(args, result)
        return EXIT_ERRORS
    graph = result.graph
    if args.entrypoint and graph.node(f"entrypoint:{args.entrypoint}") is None:
        print(f"a3s-gateway route: unknown entrypoint '{args.entrypoint}'", file=sys.stderr)
        return EXIT_USAGE
    if args.tcp:
        if args.request:
            print("a3s-gateway route: --tcp takes --sni/--alpn/--client-ip, not METHOD URL", file=sys.stderr)
            return EXIT_USAGE
        tls = bool(args.tls or args.sni is not None or args.alpn)
        match = route_tcp(
            graph, TcpProbe(args.sni, tuple(args.alpn), args.client_ip, tls=tls), args.entrypoint
        )
    else:
        if len(args.request) != 2:
            print(
                "a3s-gateway route: expected METHOD URL, e.g. route --config gw.hcl GET http://host/path",
                file=sys.stderr,
            )
            return EXIT_USAGE
        headers = []
        for raw in args.header:
            name, sep, value = raw.partition(":")
            if not sep or not name.strip():
                print(f"a3s-gateway route: bad header {raw!r}: use 'Name: value'", file=sys.stderr)
                return EXIT_USAGE
            headers.append((name.strip(), value.strip()))
        paths = entrypoint_paths(graph, args.entrypoint)
        if paths is None:
            print(
                "a3s-gateway route: the entrypoints read paths differently: pass --entrypoint",
                file=sys.stderr,
            )
            return EXIT_USAGE
        try:
            probe = HttpProbe.from_url(args.request[0], args.request[1], headers, args.client_ip).as_routed(
                paths
            )
        except BadTarget as exc:
            refused = {"route": None, "status": 400, "error": str(exc)}
            print(json.dumps(refused) if args.format == "json" else f"refused: 400 {exc}")
            return EXIT_ERRORS
        target = probe.target
        match = route_http(graph, probe, args.entrypoint)
    if match is None:
        print(json.dumps({"route": None}) if args.format == "json" else "no route")
        return EXIT_ERRORS
    info = describe(graph, match)
    if not args.tcp:
        info["target"] = target  # what the backend receives (before the router's middlewares)
    if args.format == "json":
        print(json.dumps(info, indent=2, sort_keys=True))
    else:
        chain = " -> ".join(f"{m['name']} ({m['type']})" for m in info["middlewares"]) or "(none)"
        print(f"router:      {info['router']}  [{info['rule']}]  priority {info['priority']}")
        print(f"entrypoints: {', '.join(info['entrypoints'])}")
        if "target" in info:
            print(f"target:      {info['target']}")
        print(f"middlewares: {chain}")
        suffix = "  (scaled)" if info["scaled"] else "  (built in)" if info["internal"] else ""
        print(f"service:     {info['service']}{suffix}")
        for server in info["servers"]:
            print(f"  server:    {server}")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from .gateway import run_command

    _apply_env(args)
    return run_command(args)


def _status(args: argparse.Namespace) -> int:
    from .admin.cli import status_command

    return status_command(args)


def _reload(args: argparse.Namespace) -> int:
    from .admin.cli import reload_command

    return reload_command(args, color=_use_color(args))


def _providers_dump(args: argparse.Namespace) -> int:
    from .provider_dump import dump_command

    _apply_env(args)
    return dump_command(args, color=_use_color(args))


def _demo(args: argparse.Namespace) -> int:
    from .demo_backend import main_command

    return main_command(args)


__all__ = ["MatchHeaders", "main"]
