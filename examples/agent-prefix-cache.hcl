# Prefix-cache-aware balancing: each chat request goes to the model server most likely to hold
# its prompt's prefix (the shared system prompt, the conversation so far) in its prefix cache,
# so its first token comes sooner; a server with more than its share of requests in flight is
# passed over for the least-loaded one.
#
#   a3s-gateway run --config examples/agent-prefix-cache.hcl
#
# The demo replicas simulate a prefix cache (2048 blocks of 64 bytes, 0.5 ms of prefill per block
# not cached): their responses say what was cached in `x-demo-prefix-cache: cached/total`.
# Point the servers at vLLM (--enable-prefix-caching), SGLang or llama.cpp instead.

entrypoints "web" {
  address = "0.0.0.0:${A3S_PORT:-8080}"
}

routers "llm" {
  rule    = "PathPrefix(`/v1/`)"
  service = "replicas"
}

services "replicas" {
  load_balancer {
    strategy = "prefix-cache"
    servers = [
      { url = "demo://replica-1?prefix_cache=2048&prefill_delay=0.0005" },
      { url = "demo://replica-2?prefix_cache=2048&prefill_delay=0.0005" },
      { url = "demo://replica-3?prefix_cache=2048&prefill_delay=0.0005" },
    ]
    prefix-cache {
      block_size  = 256       # bytes of serialized prompt per hashed block (about 64 tokens)
      max_blocks  = 256       # only the first 64 KiB of a prompt are matched
      max_entries = 200000    # block chains remembered (least recently used first out)
      ttl         = "10m"
      load_factor = 1.25      # the holder is passed over at ceil(1.25 x the average) in flight
    }
  }
}
