"""balancers."""
