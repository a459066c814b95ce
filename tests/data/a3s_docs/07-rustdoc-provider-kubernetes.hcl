# source: A3S-Lab/Gateway:src/config/mod.rs (HCL-era), section "KubernetesProviderConfig / Example"
providers {
  kubernetes {
    namespace          = "default"
    label_selector     = "app=my-service"
    watch_interval_secs = 30
  }
}
