"""FTP through the gateway, passive mode by the backend-side method (docs/l4.md, FTP): a real
FTP server (pyftpdlib) masquerades the gateway's address in its 227 replies and opens its passive
ports in a fixed range, which the gateway relays one to one (examples/ftp.hcl, run here). A real
client (the standard library's ftplib) uploads and downloads 10 MiB through the gateway."""

from __future__ import annotations

import ftplib
import io
import os
import random
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest

from .stubs import eventually
from .tcp_peers import local_example, serving

pytestmark = pytest.mark.anyio

GATEWAY, SERVER = "127.0.0.1", "127.0.0.2"  # two loopback addresses: the same ports on both
PASSIVE = 4  # the example's passive range: 30000-30003


def _free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _ports() -> tuple[int, int, int]:
    """A control port for the gateway, one for the server, and the first of PASSIVE free ports."""
    for _ in range(100):
        base = random.randrange(10000, 30000)
        control, server_control = base + PASSIVE, base + PASSIVE + 1
        ports = range(base, base + PASSIVE)
        free = all(_free(GATEWAY, p) and _free(SERVER, p) for p in ports)
        if free and _free(GATEWAY, control) and _free(SERVER, server_control):
            return control, server_control, base
    raise RuntimeError("no free port range")


@contextmanager
def ftp_server(root: Path, port: int, first_passive: int) -> Iterator[None]:
    pytest.importorskip("pyftpdlib")
    command = [
        sys.executable, "-m", "pyftpdlib", "-i", SERVER, "-p", str(port), "-w", "-d", str(root),
        "-n", GATEWAY, "-r", f"{first_passive}-{first_passive + PASSIVE - 1}",
    ]  # fmt: skip
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
    control, server_control, base = _ports()
    root = tmp_path / "ftp"
    root.mkdir()
    with ftp_server(root, server_control, base):
        async with serving(tmp_path, example(control, server_control, base)) as gateway:
            await eventually(lambda: not _free(SERVER, server_control))
            payload = os.urandom(10 * 1024 * 1024)
            got, reply = await anyio.to_thread.run_sync(transfer, control, payload)
            assert got == payload
            assert (root / "big.bin").read_bytes() == payload
            # The server announced the gateway's address and a port of the relayed range.
            numbers = [int(n) for n in reply.split("(")[1].split(")")[0].split(",")]
            assert ".".join(map(str, numbers[:4])) == GATEWAY
            assert base <= numbers[4] * 256 + numbers[5] < base + PASSIVE
            entrypoints = gateway.health()["entrypoints"]
            relayed = sum(entrypoints[f"ftp-data-{30000 + i}"]["accepted"] for i in range(PASSIVE))
            assert relayed >= 2 and entrypoints["ftp"]["accepted"] == 1
