"""scalers."""
