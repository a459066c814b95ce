"""The channel kinds' configurations, one module per platform, each declaring its middleware kind."""
