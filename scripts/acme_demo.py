"""`make acme-demo`: a certificate from a local ACME server, in one command.

Starts Debian's pebble (Let's Encrypt's test CA) and pebble-challtestsrv (the DNS server pebble
resolves through: every name is 127.0.0.1) on loopback, runs `a3s-gateway run` on
examples/acme.hcl pointed at that pebble, waits until the gateway serves a certificate for
app.localhost that chains to pebble's root, and prints how to look at it. Ctrl-C stops
everything (`--once`: stop as soon as the certificate is served; `--challenge tls` uses
TLS-ALPN-01 instead of HTTP-01).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.pebble_server import Pebble, served_serial, verifies  # noqa: E402
from tests.stubs import free_port  # noqa: E402

HOST = "app.localhost"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="exit once the certificate is served")
    parser.add_argument("--challenge", choices=["http", "tls"], default="http")
    args = parser.parse_args()
    for program in ("pebble", "pebble-challtestsrv"):
        if shutil.which(program) is None:
            print(f"{program} is not installed: run `make test-deps` (Debian's pebble package)", file=sys.stderr)
            return 1
    work = Path(tempfile.mkdtemp(prefix="a3s-acme-demo-"))
    web, websecure = free_port(), free_port()
    with Pebble.start(work / "pebble", http_port=web, tls_port=websecure) as pebble:
        root = pebble.root()
        (work / "pebble-root.pem").write_text(root)
        env = {
            **os.environ,
            "A3S_BIND": "127.0.0.1",
            "A3S_HTTP_PORT": str(web),
            "A3S_HTTPS_PORT": str(websecure),
            "ACME_DIRECTORY": pebble.directory,
            "ACME_CA_BUNDLE": pebble.ca_file,
            "ACME_STORAGE": str(work / "acme.json"),
            "APP_HOST": HOST,
            "APP_RESOLVER": args.challenge,
        }
        gateway = str(Path(sys.executable).with_name("a3s-gateway"))
        print(f"pebble: {pebble.directory}; the gateway on http://127.0.0.1:{web} and https://127.0.0.1:{websecure}")
        process = subprocess.Popen([gateway, "run", "--config", str(ROOT / "examples" / "acme.hcl")], env=env)
        try:
            deadline = time.monotonic() + 60
            while not verifies(websecure, HOST, root):
                if process.poll() is not None or time.monotonic() > deadline:
                    print("no certificate: see the gateway's log above", file=sys.stderr)
                    return 1
                time.sleep(0.2)
            print(f"\ncertificate for {HOST} issued by pebble (serial {served_serial(websecure, HOST)}), verified")
            print(f"against pebble's root ({work / 'pebble-root.pem'}). Look at it:\n")
            print(
                f"  curl --cacert {work / 'pebble-root.pem'} --resolve {HOST}:{websecure}:127.0.0.1 "
                f"https://{HOST}:{websecure}/ping"
            )
            print(f"  openssl s_client -connect 127.0.0.1:{websecure} -servername {HOST} -CAfile {work / 'pebble-root.pem'}\n")
            if not args.once:
                print("Ctrl-C stops the gateway and pebble.")
                process.wait()
        except KeyboardInterrupt:
            pass
        finally:
            process.terminate()
            process.wait(15)
    print(f"files (test keys only): {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
