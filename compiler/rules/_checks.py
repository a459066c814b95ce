"""Semantic checks of one matcher: name, argument count, and what each argument must be.

Everything Traefik v3.7 rejects when it builds a router is an error here, with the column of the
offending argument. Forms Traefik v3.7 accepts but that cannot mean what their author wanted get
a warning, with what to write instead: `{id:[0-9]+}` templates (literal text in v3), `Host` with
a port, brackets or a `*` that is not a leading `*.` label, `Header(`Host`, ...)`,
`Query(`a=b`)`. A warning never stops a rule from compiling: what runs on Traefik runs here.
Traefik v2 forms that v3 refuses (several values in one matcher, `HostHeader`, ...) are errors
whose hint is the v3 rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from ._catalog import ARITY, V2_ONLY, Kind, describe_arity, kind_of, resolve, resolve_v2
from ._inputs import parse_ip_spec
from ._re2 import Re2Error, compile_re2
from ._v2 import quote_meta, template_hint, v2_template
from .ast import go_quote

__all__ = ["Arg", "RuleProblem", "check_matcher"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One problem in a rule: 1-based column in the rule text, message, optional fix.

    An error is what Traefik v3.7 refuses when it builds the router. A warning is a rule Traefik
    accepts and runs but that cannot mean what its author wanted (it never matches, or matches
    literal text): it compiles, because a configuration that runs on Traefik must run here.
    """

    col: int
    message: str
    hint: str | None = None
    severity: Severity = "error"


@dataclass(frozen=True, slots=True)
class Arg:
    """An argument as written: its value, the column of its opening quote, raw or not."""

    value: str
    col: int
    raw: bool = True

    def col_at(self, index: int) -> int:
        """Column of value[index]; exact in raw strings, the quote for interpreted ones."""
        return self.col + 1 + index if self.raw else self.col


class _Ctx:
    __slots__ = ("args", "kind", "name", "out")

    def __init__(self, name: str, args: Sequence[Arg], kind: Kind, out: list[RuleProblem]) -> None:
        self.name, self.args, self.kind, self.out = name, args, kind, out

    def report(self, col: int, message: str, hint: str | None = None) -> None:
        self.out.append(RuleProblem(col, message, hint))

    def warn(self, col: int, message: str, hint: str | None = None) -> None:
        self.out.append(RuleProblem(col, message, hint, "warning"))


def check_matcher(written: str, args: Sequence[Arg], col: int, kind: Kind, out: list[RuleProblem]) -> str:
    """Append the problems of one matcher to `out`; return its canonical name (or as written)."""
    name = resolve(written, kind)
    if name is None:
        _unknown(written, args, col, kind, out)
        return written
    ctx = _Ctx(name, args, kind, out)
    if len(args) not in ARITY[kind][name]:
        _bad_arity(ctx, written, col)
        return name
    empty = [a for a in args if not a.value]
    for arg in empty:
        _empty(ctx, written, arg)
    if not empty:
        _CHECKS.get(name, _no_check)(ctx)
    return name


def _unknown(written: str, args: Sequence[Arg], col: int, kind: Kind, out: list[RuleProblem]) -> None:
    v2 = resolve_v2(written, kind)
    if v2 is not None:
        v3 = V2_ONLY[kind][v2]
        rewrite = f"write {v3}({', '.join(go_quote(a.value) for a in args)})"
        out.append(RuleProblem(col, f"{written} is Traefik v2 syntax; Traefik v3 calls it {v3}", rewrite))
        return
    other = kind_of(written, kind)
    if other is not None:
        names = ", ".join(sorted(ARITY[kind]))
        sni = " (match TLS server names with HostSNI)" if kind == "tcp" and written.lower() == "host" else ""
        article = "an" if other == "http" else "a"
        message = f"{written} is {article} {other.upper()} matcher; {kind.upper()} rules take {names}{sni}"
        hint = f"write HostSNI({go_quote(args[0].value if args else 'example.com')})" if sni else None
        out.append(RuleProblem(col, message, hint))
        return
    out.append(RuleProblem(col, f"unknown matcher {written}", _did_you_mean(written, kind)))


def _did_you_mean(written: str, kind: Kind) -> str:
    names = sorted(ARITY[kind]) + (["Headers"] if kind == "http" else [])
    by_lower = {n.lower(): n for n in names}
    if written.lower() in by_lower:
        right = by_lower[written.lower()]
        return f"did you mean '{right}'? matcher names are case-sensitive: {right}, {right.lower()} or {right.upper()}"
    import difflib  # only a diagnostic needs it: a configuration that compiles never loads it

    close = difflib.get_close_matches(written.lower(), list(by_lower), n=1, cutoff=0.6)
    if close:
        return f"did you mean '{by_lower[close[0]]}'?"
    return f"{kind.upper()} matchers: {', '.join(sorted(ARITY[kind]))}"


def _bad_arity(ctx: _Ctx, written: str, col: int) -> None:
    name, args = ctx.name, ctx.args
    values = [a.value for a in args]
    if len(args) > 1 and ARITY[ctx.kind][name] == (1,):
        joined = " || ".join(f"{written}({go_quote(v)})" for v in values)
        ctx.report(
            col, f"{written} takes one argument in Traefik v3; a list of values is Traefik v2 syntax", joined
        )
    elif name == "Header" and len(args) % 2 == 0 and args and written.lower() == "headers":
        ctx.report(
            col, f"{written} with several name/value pairs is Traefik v2 syntax", _pairs("Header", values)
        )
    elif name.startswith("Query") and len(args) > 1 and all("=" in v for v in values):
        pairs = [part for v in values for part in v.split("=", 1)]
        ctx.report(col, f"{written}(`key=value`, ...) is Traefik v2 syntax", _pairs("Query", pairs))
    else:
        hint = (
            _pairs(name, values)
            if len(args) > 2 and len(args) % 2 == 0 and name.startswith("Header")
            else None
        )
        got = len(args) or "none"
        ctx.report(col, f"{written} takes {describe_arity(ARITY[ctx.kind][name])}, got {got}", hint)


def _pairs(name: str, values: Sequence[str]) -> str:
    pairs = zip(values[::2], values[1::2], strict=False)
    return "write " + " && ".join(f"{name}({go_quote(k)}, {go_quote(v)})" for k, v in pairs)


def _empty(ctx: _Ctx, written: str, arg: Arg) -> None:
    if written.lower() == "headers" and arg is ctx.args[1]:
        key = go_quote(ctx.args[0].value)
        ctx.report(
            arg.col,
            f"{written}({key}, ``) matched any value in Traefik v2; Traefik v3 rejects an empty value",
            f"to match a present header with any value, write HeaderRegexp({key}, `.*`)",
        )
        return
    ctx.report(arg.col, f"{written}: empty argument")


def _no_check(ctx: _Ctx) -> None:
    return None


# -- per-matcher checks -------------------------------------------------------------------------


def _check_host(ctx: _Ctx) -> None:
    arg = ctx.args[0]
    host = arg.value
    if not host.isascii():
        ctx.report(arg.col, f"{ctx.name}: non-ASCII host {go_quote(host)}", _punycode_hint(ctx.name, host))
    elif "*" in host and not _is_host_wildcard(host):
        _misplaced_star(ctx, arg)
    elif host.startswith("["):
        ctx.warn(
            arg.col, "Host never matches a bracketed address", f"write Host({go_quote(host.strip('[]'))})"
        )
    elif re.fullmatch(r"[^:]*:\d*", host):
        bare = host.partition(":")[0]
        ctx.warn(
            arg.col_at(host.index(":")),
            "Host never matches a port: Traefik compares the request's host without its port",
            f"write Host({go_quote(bare)})",
        )


def _is_host_wildcard(host: str) -> bool:
    """`*` (every host) or a leading `*.` label (exactly one label), as Traefik v3.7 reads them."""
    return host == "*" or (host.startswith("*.") and "*" not in host[2:])


def _misplaced_star(ctx: _Ctx, arg: Arg) -> None:
    host = arg.value
    suffix = host.lstrip("*").lstrip(".")
    hint = f"write HostRegexp(`^.+\\.{quote_meta(suffix)}$`)" if suffix and "*" not in suffix else None
    why = (
        "`**.` (several labels) is Traefik v3.8 syntax; v3.7 compares it literally"
        if host.startswith("**.")
        else "Traefik v3.7 takes `*` alone or as the whole first label (`*.example.com`)"
    )
    ctx.warn(arg.col_at(host.index("*")), f"{ctx.name}({go_quote(host)}) never matches: {why}", hint)


def _check_host_regexp(ctx: _Ctx) -> None:
    arg = ctx.args[0]
    if not arg.value.isascii():
        ctx.report(arg.col, f"{ctx.name}: non-ASCII pattern; match punycode (`xn--...`) host names")
        return
    _check_regexp(ctx, arg, "[^.]+")


def _check_path(ctx: _Ctx) -> None:
    arg = ctx.args[0]
    if not arg.value.startswith("/"):
        ctx.report(arg.col_at(0), f"{ctx.name}: path {go_quote(arg.value)} does not start with '/'")
        return
    template = v2_template(arg.value)
    if template is not None:
        regexp = template_hint(arg.value, "[^/]+", end=ctx.name == "Path")
        _v2_template_problem(ctx, arg, template, f"write PathRegexp({go_quote(regexp)})")


def _check_path_regexp(ctx: _Ctx) -> None:
    _check_regexp(ctx, ctx.args[0], "[^/]+")


def _check_header(ctx: _Ctx) -> None:
    key = ctx.args[0]
    lowered = key.value.lower()
    if lowered in ("host", "transfer-encoding"):
        where = "the request's Host field" if lowered == "host" else "the HTTP framing"
        hint = "match the host with Host(...) or HostRegexp(...)" if lowered == "host" else None
        ctx.warn(
            key.col, f"{ctx.name}({go_quote(key.value)}, ...) never matches: Go moves it to {where}", hint
        )
    if ctx.name == "HeaderRegexp":
        _check_regexp(ctx, ctx.args[1], ".*")


def _check_query(ctx: _Ctx) -> None:
    key = ctx.args[0]
    values = [a.value for a in ctx.args]
    if all("=" in v for v in values):
        pairs = [part for v in values for part in v.split("=", 1)]
        ctx.warn(key.col, f"{ctx.name}(`key=value`) is Traefik v2 syntax", _pairs("Query", pairs))
    if ctx.name == "QueryRegexp" and len(ctx.args) == 2:
        _check_regexp(ctx, ctx.args[1], ".*")


def _check_client_ip(ctx: _Ctx) -> None:
    arg = ctx.args[0]
    if parse_ip_spec(arg.value) is None:
        ctx.report(
            arg.col,
            f"ClientIP: {go_quote(arg.value)} is not an IP address or CIDR range",
            "e.g. ClientIP(`192.168.1.7`), ClientIP(`10.0.0.0/8`), ClientIP(`fe80::/10`)",
        )


# Traefik v3.7 pkg/muxer/tcp/matcher.go `hostOrIP`: an optional `*.` label, then Go's ASCII
# [[:word:]] (letters, digits, '_'), dots, hyphens and colons (IPv6 literals such as `10::10`).
_HOST_OR_IP = re.compile(r"(?:\*\.)?[A-Za-z0-9_.\-:]+")


def _check_host_sni(ctx: _Ctx) -> None:
    arg = ctx.args[0]
    host = arg.value
    if host == "*" or _HOST_OR_IP.fullmatch(host):
        return
    if not host.isascii():
        hint = _punycode_hint("HostSNI", host)
    elif "*" in host:
        suffix = host.lstrip("*").lstrip(".")
        hint = f"write HostSNIRegexp(`^.+\\.{quote_meta(suffix)}$`)" if "*" not in suffix else None
    else:
        hint = None
    ctx.report(arg.col, f"HostSNI: {go_quote(host)} is not a valid hostname", hint)


def _check_host_sni_regexp(ctx: _Ctx) -> None:
    _check_host_regexp(ctx)


def _check_alpn(ctx: _Ctx) -> None:
    arg = ctx.args[0]
    if arg.value == "acme-tls/1":
        ctx.report(
            arg.col, "ALPN(`acme-tls/1`) is not allowed: it is reserved for the ACME TLS-ALPN challenge"
        )


def _check_regexp(ctx: _Ctx, arg: Arg, default: str) -> None:
    try:
        compile_re2(arg.value)
    except Re2Error as exc:
        ctx.report(arg.col_at(exc.offset), f"{ctx.name}: invalid regexp: {exc.message}")
        return
    template = v2_template(arg.value)
    if template is not None:
        regexp = template_hint(arg.value, default, end=True)
        _v2_template_problem(ctx, arg, template, f"write {ctx.name}({_args_with_last(ctx, regexp)})")


def _args_with_last(ctx: _Ctx, last: str) -> str:
    return ", ".join([*(go_quote(a.value) for a in ctx.args[:-1]), go_quote(last)])


def _v2_template_problem(ctx: _Ctx, arg: Arg, at: int, hint: str) -> None:
    message = (
        f"{ctx.name}: `{{name:pattern}}` templates are Traefik v2 syntax; in v3 the braces are literal text"
    )
    ctx.warn(arg.col_at(at), message, hint)


def _punycode_hint(name: str, host: str) -> str | None:
    try:
        labels = [
            label if label.isascii() else "xn--" + label.lower().encode("punycode").decode("ascii")
            for label in host.split(".")
        ]
    except UnicodeError:
        return None
    return f"write {name}({go_quote('.'.join(labels))})"


_CHECKS: dict[str, Callable[[_Ctx], None]] = {
    "ALPN": _check_alpn,
    "ClientIP": _check_client_ip,
    "Header": _check_header,
    "HeaderRegexp": _check_header,
    "Host": _check_host,
    "HostRegexp": _check_host_regexp,
    "HostSNI": _check_host_sni,
    "HostSNIRegexp": _check_host_sni_regexp,
    "Path": _check_path,
    "PathPrefix": _check_path,
    "PathRegexp": _check_path_regexp,
    "Query": _check_query,
    "QueryRegexp": _check_query,
}
