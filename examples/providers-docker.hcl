# Routes from container labels (docs/providers.md, "docker"), Traefik-style:
#
#   docker run -d --name llm -l a3s.enable=true \
#     -l 'a3s.http.routers.llm.rule=PathPrefix(`/v1`)' \
#     -l 'a3s.http.services.llm.loadbalancer.server.port=8000' vllm/vllm-openai
#   a3s-gateway run --config examples/providers-docker.hcl

entrypoints "web" {
  address = "127.0.0.1:8080"
}

providers {
  docker {
    host               = "unix:///var/run/docker.sock"
    exposed_by_default = false   # only containers labelled a3s.enable=true
  }
}
