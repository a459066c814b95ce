"""CPU cost of the server side of a TLS handshake, with and without ACME certificates served.

    .venv/bin/python benchmarks/tlshandshake.py [--handshakes 400] [--rounds 5]

Both ends run in this process over memory BIOs (no sockets, no event loop); the server side's
CPU is measured alone (thread CPU time around its `do_handshake` calls only). Three server
contexts, in turn each round so drift spreads over all of them:

    static     an entrypoint with its own certificate (runtime/tls.py's one-certificate path)
    acme       the same name served from the ACME table (the SNI callback looks it up there)
    acme+alpn  the same, while a TLS-ALPN-01 challenge is pending for another name (the
               ClientHello message callback runs on every handshake)
    options    an entrypoint whose routers name TLS options (runtime/tls_select.py): the
               ClientHello is parsed and the context of its SNI looked up before the handshake

Prints µs of server CPU per handshake: the median and the minimum over rounds.
"""

from __future__ import annotations

import argparse
import ssl
import statistics
import tempfile
import time
from pathlib import Path

from a3s_gateway.compiler.schema import TlsConfig, TlsOptionsConfig
from a3s_gateway.compiler.tls_options import EntrypointOptions
from a3s_gateway.runtime.acme.keys import alpn_challenge_certificate
from a3s_gateway.runtime.acme.table import CertificateTable
from a3s_gateway.runtime.protocols.clienthello import ClientHello, parse_client_hello
from a3s_gateway.runtime.tls import server_context
from a3s_gateway.runtime.tls_select import SniContexts, entrypoint_context, sni_contexts


def _certs(folder: Path) -> tuple[str, str, str]:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.backends import make_certs

    certs = make_certs(folder, ["bench.test"])
    cert, key = certs.leaves["bench.test"]
    return certs.ca_file, cert, key


def handshake_cpu(server_ctx: ssl.SSLContext | SniContexts, client_ctx: ssl.SSLContext) -> float:
    """Seconds of server-side CPU for one full handshake (with `SniContexts`: the context chosen
    from the parsed ClientHello first, as a connection does)."""
    s_in, s_out, c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="bench.test")
    spent = 0.0
    if isinstance(server_ctx, SniContexts):
        try:
            client.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = c_out.read()
        s_in.write(hello)
        start = time.thread_time()
        parsed = parse_client_hello(hello)
        chosen = server_ctx.choose(parsed.sni if isinstance(parsed, ClientHello) else None)
        spent += time.thread_time() - start
        server = chosen.wrap_bio(s_in, s_out, server_side=True)
    else:
        server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = [False, False]
    while not all(done):
        if not done[1]:
            try:
                client.do_handshake()
                done[1] = True
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        if not done[0]:
            start = time.thread_time()
            try:
                server.do_handshake()
                done[0] = True
            except ssl.SSLWantReadError:
                pass
            spent += time.thread_time() - start
        c_in.write(s_out.read())
    return spent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--handshakes", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tlsbench-"))
    ca, cert, key = _certs(folder)
    client = ssl.create_default_context(cafile=ca)
    client.set_alpn_protocols(["h2", "http/1.1"])
    static = server_context(TlsConfig(cert_file=cert, key_file=key))
    table = CertificateTable()
    acme = server_context(TlsConfig(), acme=table)
    table.install(["bench.test"], Path(cert).read_bytes(), Path(key).read_bytes())
    table2 = CertificateTable()
    pending = server_context(TlsConfig(), acme=table2)
    table2.install(["bench.test"], Path(cert).read_bytes(), Path(key).read_bytes())
    table2.add_challenge("other.test", *alpn_challenge_certificate("other.test", "token.thumb"))
    modern = TlsOptionsConfig(min_version="1.3")
    plan = EntrypointOptions(None, (("bench.test", "modern"),), (("modern", modern),))
    options = sni_contexts(
        entrypoint_context(TlsConfig(cert_file=cert, key_file=key), plan, alpn=("h2", "http/1.1"))
    )
    assert options is not None
    variants: dict[str, ssl.SSLContext | SniContexts] = {
        "static": static,
        "acme": acme,
        "acme+alpn": pending,
        "options": options,
    }
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, ctx in variants.items():
            total = sum(handshake_cpu(ctx, client) for _ in range(args.handshakes))
            results[name].append(total / args.handshakes * 1e6)
    for name, values in results.items():
        print(
            f"{name:10s} median {statistics.median(values):7.1f} µs  min {min(values):7.1f} µs  (server CPU per handshake)"
        )


if __name__ == "__main__":
    main()
