# Laid over gateway.hcl by `--env production`: a key here replaces the base's, a block's keys one
# by one; everything else is the base's.
entrypoints "web" {
  address = "0.0.0.0:8080"
}

services "llm" {
  load_balancer {
    strategy = "p2c"
  }
}

log_level = "warning"
