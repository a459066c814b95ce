"""What each balancer kind declares: its config model and names (see stdlib/registry.py)."""
