# The canary that safe-rollout.hcl mirrors 5% of its traffic to, loaded by its file provider.
# Point it at another model and save: `run --watch` reloads the gateway.
services "llm-canary" {
  load_balancer {
    servers = [{ url = "http://127.0.0.1:8101" }]
  }
}
