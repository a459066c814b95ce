"""What each provider kind declares: its config model and names (see stdlib/registry.py)."""
