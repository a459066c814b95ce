# Routes from Redis (docs/providers.md#redis), the etcd layout as Redis strings. With keyspace
# notifications on, a SET takes effect within the throttle; without, within poll_interval.
#
#   redis-server --notify-keyspace-events KA &
#   redis-cli set a3s/http/routers/chat/rule 'PathPrefix(`/v1/chat`)'
#   redis-cli set a3s/http/routers/chat/service llm@file
#   a3s-gateway run --config examples/providers-redis.hcl
#   curl localhost:8080/v1/chat/completions -d '{"model":"m","messages":[{"role":"user","content":"hi"}]}'
entrypoints "web" {
  address = "127.0.0.1:8080"
}

services "llm" {
  load_balancer {
    servers { url = "demo://llm" }
  }
}

routers "models" {
  rule    = "Path(`/v1/models`)"
  service = "llm"
}

providers {
  redis {
    endpoints     = ["127.0.0.1:6379"]
    root_key      = "a3s"
    poll_interval = "5s"
  }
}
