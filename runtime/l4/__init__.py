"""The TCP data path: entrypoints that relay connections, routed by Traefik's TCP rules.

    accept (tcp_allowed_ips, max_connections) -> [PROXY header from a trusted peer]
      -> peek the ClientHello (protocols/clienthello.py) unless no router needs it
      -> route (routes.py: HostSNI, HostSNIRegexp, ClientIP, ALPN; TLS routers for TLS clients,
         the others for plaintext ones) -> tcp-filter -> TLS termination or passthrough
      -> the service picks and connects a backend (service.py) -> relay (relay.py)

See docs/l4.md. A connection pins the graph generation that accepted it until it closes.
"""

from .routes import TcpRoute, TcpRouterTable, build_tcp_tables
from .server import TcpServer
from .service import TcpService

__all__ = ["TcpRoute", "TcpRouterTable", "TcpServer", "TcpService", "build_tcp_tables"]
