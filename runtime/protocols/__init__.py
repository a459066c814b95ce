"""Pure sans-IO protocol adapters: bytes in, events (runtime/events.py) out, and back.

Nothing here touches a socket, a clock or an event loop (tests/test_protocol_purity.py checks
the imports), and no parser library type crosses this package's boundary.
"""

from .http1 import ClientConnection, ProtocolError, ServerConnection, render_response

__all__ = ["ClientConnection", "ProtocolError", "ServerConnection", "render_response"]
