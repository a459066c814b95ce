"""What each DNS-01 provider declares: its config model (its implementation: resolvers/<kind>.py)."""
