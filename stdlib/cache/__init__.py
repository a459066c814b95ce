"""The response cache's parts, used by the `cache` middleware (stdlib/middlewares/cache.py): RFC 9111
freshness rules, stored entries and their byte form, the memory and Redis stores, the body tee,
keys and serving, and what makes a completion cacheable."""
