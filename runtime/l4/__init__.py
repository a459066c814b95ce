"""The TCP data path: entrypoints that relay connections, routed by Traefik's TCP rules.

    accept (tcp_allowed_ips, max_connections) -> [PROXY header from a trusted peer]
      -> peek the ClientHello (protocols/clienthello.py) unless no router needs it
      -> route (routes.py: HostSNI, HostSNIRegexp, ClientIP, ALPN; TLS routers for TLS clients,
         the others for plaintext ones) -> tcp-filter -> TLS termination or passthrough
      -> the service picks and connects a backend (service.py) -> relay (relay.py)

UDP entrypoints (udp_server.py) relay datagrams in sessions keyed by the client address, each
with a socket connected to the backend its service chose (udp_session.py).

See docs/l4.md. A connection pins the graph generation that accepted it until it closes.
"""

from .routes import TcpRoute, TcpRouterTable, build_tcp_tables
from .server import TcpServer
from .service import TcpService
from .udp_server import UdpServer
from .udp_session import UdpRoute

__all__ = [
    "TcpRoute",
    "TcpRouterTable",
    "TcpServer",
    "TcpService",
    "UdpRoute",
    "UdpServer",
    "build_tcp_tables",
]
