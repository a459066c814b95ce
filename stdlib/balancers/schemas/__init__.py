"""What each balancer kind declares: its config model and names (see stdlib/registry.py)."""

# The service protocols of a strategy that balances TCP and UDP connections as well as HTTP
# requests (it needs nothing from the request). The default, HTTP only, is for strategies that
# pick by the request itself.
L4_TOO = frozenset({"http", "tcp"})
