# source: A3S-Lab/Gateway:src/config/mod.rs (HCL-era), section "DockerProviderConfig / Example"
providers {
  docker {
    host               = "/var/run/docker.sock"
    poll_interval_secs = 10
  }
}
