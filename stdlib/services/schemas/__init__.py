"""What each service kind declares: its config model and names (see stdlib/registry.py)."""
