"""FTP through the gateway. Passive mode by the backend-side method (docs/l4.md, FTP): a real
FTP server (pyftpdlib) masquerades the gateway's address in its 227 replies and opens its passive
ports in a fixed range, which the gateway relays one to one (examples/ftp.hcl, run here). A real
client (the standard library's ftplib) uploads and downloads 10 MiB through the gateway. And
passive mode rewritten by the gateway (a service's `ftp` block): the same server, unmasqueraded."""

from __future__ import annotations

import ftplib
import io
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from a3s_gateway.runtime.gateway import Gateway

from .stubs import eventually, ports_in_a_row
from .tcp_peers import local_example, serving

pytestmark = pytest.mark.anyio

GATEWAY, SERVER = "127.0.0.1", "127.0.0.2"  # two loopback addresses: the same ports on both
PASSIVE = 4  # the example's passive range: 30000-30003


def _greets(host: str, port: int) -> bool:
    """The FTP server answers with its 220 greeting: it listens and serves (its port being bound
    is not enough: under load the gap between bind and listen let the gateway's first connect be
    refused, and the client see a reset)."""
    try:
        with socket.create_connection((host, port), timeout=5) as sock:
            return sock.recv(64).startswith(b"220")
    except OSError:
        return False


def _ports() -> tuple[int, int, int]:
    """A control port for the gateway, one for the server, and the first of PASSIVE free ports:
    PASSIVE + 2 ports in a row, free on both addresses."""
    base = ports_in_a_row(PASSIVE + 2, (GATEWAY, SERVER))
    return base + PASSIVE, base + PASSIVE + 1, base


@contextmanager
def ftp_server(root: Path, port: int, first_passive: int | None) -> Iterator[None]:
    """pyftpdlib on SERVER; with `first_passive`, masquerading GATEWAY with a fixed passive range
    (the backend-side method), else as it comes (any passive port, its own address)."""
    pytest.importorskip("pyftpdlib")
    command = [sys.executable, "-m", "pyftpdlib", "-i", SERVER, "-p", str(port), "-w", "-d", str(root)]
    if first_passive is not None:
        command += ["-n", GATEWAY, "-r", f"{first_passive}-{first_passive + PASSIVE - 1}"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        process.kill()
        process.wait(10)


def example(control: int, server_control: int, base: int) -> str:
    replacements = [
        ("0.0.0.0:2121", f"{GATEWAY}:{control}"),
        ('10.0.4.10:21"', f'{SERVER}:{server_control}"'),
    ]
    for i in range(PASSIVE):
        replacements += [
            (f"0.0.0.0:{30000 + i}", f"{GATEWAY}:{base + i}"),
            (f"10.0.4.10:{30000 + i}", f"{SERVER}:{base + i}"),
        ]
    return local_example("ftp.hcl", replacements)


@dataclass
class Setup:
    gateway: Gateway
    control: int  # the gateway's control port
    base: int  # the first port of the passive range
    root: Path  # the FTP server's directory


@asynccontextmanager
async def through_gateway(tmp_path: Path, *, masquerading: bool) -> AsyncIterator[Setup]:
    """pyftpdlib behind the gateway: masquerading it, with the example's relayed range (the
    backend-side method), or as it comes, with the gateway rewriting (a service's `ftp` block)."""
    control, server_control, base = _ports()
    root = tmp_path / "ftp"
    root.mkdir()
    if masquerading:
        text = example(control, server_control, base)
    else:
        text = rewriting(control, server_control, base)
    with ftp_server(root, server_control, base if masquerading else None):
        async with serving(tmp_path, text) as gateway:
            await eventually(lambda: _greets(SERVER, server_control))
            yield Setup(gateway, control, base, root)


def _address_of(pasv: str) -> tuple[str, int]:
    """The address and port a 227 reply names."""
    numbers = [int(n) for n in pasv.split("(")[1].split(")")[0].split(",")]
    return ".".join(map(str, numbers[:4])), numbers[4] * 256 + numbers[5]


def transfer(port: int, payload: bytes) -> tuple[bytes, str]:
    """Upload `payload`, download it back (passive mode), and return it with the 227 reply."""
    with ftplib.FTP() as ftp:
        ftp.connect(GATEWAY, port, timeout=30)
        ftp.login()
        ftp.set_pasv(True)
        reply = ftp.sendcmd("PASV")
        ftp.storbinary("STOR big.bin", io.BytesIO(payload))
        out = io.BytesIO()
        ftp.retrbinary("RETR big.bin", out.write)
        return out.getvalue(), reply


async def test_ten_mib_up_and_down_through_the_ftp_example(tmp_path: Path) -> None:
    async with through_gateway(tmp_path, masquerading=True) as ftp:
        payload = os.urandom(10 * 1024 * 1024)
        got, reply = await anyio.to_thread.run_sync(transfer, ftp.control, payload)
        assert got == payload
        assert (ftp.root / "big.bin").read_bytes() == payload
        # The server announced the gateway's address and a port of the relayed range.
        host, port = _address_of(reply)
        assert host == GATEWAY and ftp.base <= port < ftp.base + PASSIVE
        entrypoints = ftp.gateway.health()["entrypoints"]
        relayed = sum(entrypoints[f"ftp-data-{30000 + i}"]["accepted"] for i in range(PASSIVE))
        assert relayed >= 2 and entrypoints["ftp"]["accepted"] == 1


def rewriting(control: int, server_control: int, base: int) -> str:
    """examples/ftp-passive.hcl: the gateway rewrites the passive replies (a service's `ftp` block)."""
    return local_example(
        "ftp-passive.hcl",
        [
            ("0.0.0.0:2121", f"{GATEWAY}:{control}"),
            ('10.0.4.10:21"', f'{SERVER}:{server_control}"'),
            ('"30000-30003"', f'"{base}-{base + PASSIVE - 1}"'),
        ],
    )


def transfer_both_ways(port: int, payload: bytes) -> tuple[bytes, str, str]:
    """Upload `payload` in passive mode (PASV), download it back in extended passive mode (EPSV);
    the two replies as the client saw them."""
    with ftplib.FTP() as ftp:
        ftp.connect(GATEWAY, port, timeout=30)
        ftp.login()
        ftp.trust_server_pasv_ipv4_address = True  # connect where the 227 reply says
        pasv = ftp.sendcmd("PASV")
        ftp.storbinary("STOR big.bin", io.BytesIO(payload))
        epsv = ftp.sendcmd("EPSV")
        ftp.af = socket.AF_INET6  # ftplib uses EPSV for IPv6 only: its data connections too, here
        out = io.BytesIO()
        ftp.retrbinary("RETR big.bin", out.write)
        return out.getvalue(), pasv, epsv


async def test_the_gateway_rewrites_passive_replies_and_relays_the_data(tmp_path: Path) -> None:
    """The server announces its own address and any port; the client sees the gateway's address
    and a port of the gateway's range, and 10 MiB go up and down through it."""
    async with through_gateway(tmp_path, masquerading=False) as ftp:
        payload = os.urandom(10 * 1024 * 1024)
        got, pasv, epsv = await anyio.to_thread.run_sync(transfer_both_ways, ftp.control, payload)
        assert got == payload
        assert (ftp.root / "big.bin").read_bytes() == payload
        host, port = _address_of(pasv)
        assert host == GATEWAY and ftp.base <= port < ftp.base + PASSIVE
        assert ftp.base <= int(epsv.split("|||")[1].split("|")[0]) < ftp.base + PASSIVE
        assert ftp.gateway.health()["entrypoints"]["ftp"]["accepted"] == 1


def _from_stranger(port: int) -> bytes:
    """What a connection to `port` from another address than the client's receives."""
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.3", 0))
        stranger.settimeout(10)
        stranger.connect((GATEWAY, port))
        return stranger.recv(16)


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((GATEWAY, port)) != 0


async def test_a_passive_port_takes_only_the_client_and_closes_with_the_control_connection(
    tmp_path: Path,
) -> None:
    async with through_gateway(tmp_path, masquerading=False) as setup:
        ftp = ftplib.FTP()
        await anyio.to_thread.run_sync(lambda: ftp.connect(GATEWAY, setup.control, timeout=30))
        await anyio.to_thread.run_sync(ftp.login)
        _, port = _address_of(await anyio.to_thread.run_sync(ftp.sendcmd, "PASV"))
        # Another address is refused: its connection is closed without a byte.
        assert await anyio.to_thread.run_sync(_from_stranger, port) == b""
        # The control connection ends: its passive port is closed with it.
        await anyio.to_thread.run_sync(ftp.quit)
        await eventually(lambda: _refused(port))
