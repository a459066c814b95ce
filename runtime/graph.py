"""A live graph generation: the compiled IR turned into router tables and handler chains.

`LiveGraph.build(ir, txn, env)` walks the IR once:

- every HTTP entrypoint gets a `RouterTable` of the routers attached to it, in priority order;
- every middleware node becomes an instance of its registered kind, built with the state the
  store hands back (so an unchanged node keeps its buckets and breakers);
- every HTTP service becomes an `HttpService` whose requests go through the proxy with the
  upstream client of its `proxy:<service>` node; a service of a registered kind
  (`model_router { ... }`) becomes that kind's handler, which sends requests on to the others;
- every router becomes a chain `mw1(req, next=mw2(req, next=... service))`, bound once here.
  Middlewares receive `next` as a call argument, so an instance never holds its successor and
  a change downstream never rebuilds it;
- a server URL `demo://<name>` starts the built-in demo backend in-process (once: it is state
  keyed by the URL) and is replaced by its real address.

Building changes nothing the running generation uses: new state comes from the transaction,
and every change to state shared with the running generation (a service's backend table and
health checks, a scaler's limits, the revisions' split) is registered with `txn.on_commit` and
applied only when the gateway commits the reload.

A request pins the generation it started on (`Gateway` reads its current graph once), and the
generation counts requests until their response bodies end, and mirror shadows until they end,
so retired state is closed only after the last request of the old graph is done (`wait_idle`).
TCP entrypoints get a `TcpRouterTable` of their TCP routers (runtime/l4/routes.py), TCP
services (servers given by `address`) a `TcpService`, built from the same state store; a TCP
connection holds its generation (`hold()`) until it closes. A UDP entrypoint gets the `UdpRoute`
of its one UDP router (runtime/l4/udp_server.py), whose service is a `TcpService` too.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from ..compiler.internal import is_internal
from ..compiler.ir import IRGraph, Node
from ..compiler.request_target import PathPolicy
from ..compiler.schema import EntrypointConfig, ProxyConfig, RouterConfig, ServiceConfig, Settings
from ..compiler.tls_options import tls_options_plan
from ..stdlib import registry
from ..stdlib.base import BuildContext
from .admin import AdminHost, internal_service
from .api import (
    NO_RECORDER,
    SYSTEM_CLOCK,
    Backend,
    Clock,
    Handler,
    Middleware,
    Publish,
    Recorder,
    Request,
    Response,
    RouteInfo,
    no_publish,
)
from .body_end import on_body_end
from .demo_backend import DemoBackend, options_from_url
from .errors import NotFound
from .observe.denials import Denials, counted
from .observe.l4_meters import TcpMeters
from .observe.meters import SERVICE_START, RequestMeters
from .observe.metric_names import UPSTREAM_CONNECT
from .observe.metrics import GatewayMetrics
from .observe.observers import observe
from .observe.tracing import traced_forward
from .pipeline import recover
from .router import CompiledRule, RouteMatch, RouterTable, compile_rule
from .service import Front, HttpService, ServiceState, close_service_state
from .state import StateTxn
from .tls_select import fronting_guard

if TYPE_CHECKING:
    from .l4 import TcpRouterTable, TcpService, UdpRoute
    from .observe.access_log import AccessLog
    from .observe.tracing import Tracing

__all__ = ["BuildEnv", "BuildError", "LiveGraph", "chain"]

_log = logging.getLogger("a3s_gateway.graph")
DEMO_SCHEME = "demo://"
UpstreamFactory = Callable[[ProxyConfig], Any]
"""Makes the upstream client of one proxy node (see `upstream_client`)."""


class BuildError(Exception):
    """The IR cannot be turned into a live graph (an unknown kind, a demo backend that failed)."""


@dataclass(frozen=True)
class BuildEnv:
    """What building a generation needs from the gateway that owns it."""

    # In-process demo backends run here (the gateway's task group).
    task_group: anyio.abc.TaskGroup
    clock: Clock = SYSTEM_CLOCK
    env: Mapping[str, str] = field(default_factory=dict)
    logger: logging.Logger = _log
    # What the internal services (`api@internal`) read and do: the gateway serving this graph.
    admin: AdminHost | None = None
    # State changes for the live feed (health flips, scaling, rollout steps).
    publish: Publish = no_publish
    # The gateway's metrics registry, None when no `metrics` block is configured.
    metrics: GatewayMetrics | None = None
    # Where kinds report events for the metrics (it outlives reloads; see runtime/api.py).
    recorder: Recorder = NO_RECORDER


def chain(
    middlewares: Sequence[Middleware], endpoint: Handler, denials: Sequence[Denials | None] = ()
) -> Handler:
    """`mw1(req, next=mw2(req, next=... endpoint))` as one handler. With `denials` (metrics on),
    each middleware is bound so that the requests it answers itself are counted."""
    handler = endpoint
    counters = list(denials) or [None] * len(middlewares)
    for middleware, counter in zip(reversed(middlewares), reversed(counters), strict=True):
        handler = _bind(middleware, handler) if counter is None else counted(middleware, handler, counter)
    return handler


def _bind(middleware: Middleware, next_: Handler) -> Handler:
    async def call(request: Request) -> Response:
        return await middleware(request, next_)

    return call


class LiveGraph:
    """One generation: router tables, middleware instances and services built from an IRGraph."""

    def __init__(self, ir: IRGraph, generation: int) -> None:
        self.ir = ir
        self.generation = generation
        self.tables: dict[str, RouterTable] = {}
        self.entrypoints: dict[str, EntrypointConfig] = {}
        self.middlewares: dict[str, Middleware] = {}
        self.services: dict[str, HttpService] = {}
        # Services of a registered kind (model_router), by name: they route to `services`.
        self.service_kinds: dict[str, Handler] = {}
        # Built-in services (`api@internal`, `ping@internal`), by service name.
        self.internal: dict[str, Handler] = {}
        # The upstream client of each HTTP service, for the admin API's connection counts.
        self.clients: dict[str, Any] = {}
        self.demo_backends: dict[str, DemoBackend] = {}
        # The metrics registry and this generation's label children (None: metrics are off).
        self.metrics: GatewayMetrics | None = None
        self.meters: RequestMeters | None = None
        self._denial_counters: dict[str, Denials] = {}
        # TCP entrypoints, their router tables, TCP services and tcp-filter states, by name.
        self.tcp_entrypoints: dict[str, EntrypointConfig] = {}
        self.tcp_tables: dict[str, TcpRouterTable] = {}
        self.tcp_services: dict[str, TcpService] = {}
        self.tcp_filters: dict[str, Any] = {}
        # The TCP routers' byte and duration meters (None: metrics are off).
        self.tcp_meters: TcpMeters | None = None
        # UDP entrypoints and the route (router, service) of each.
        self.udp_entrypoints: dict[str, EntrypointConfig] = {}
        self.udp_routes: dict[str, UdpRoute] = {}
        self.active = 0
        self._idle: anyio.Event | None = None

    # ----------------------------------------------------------------------- serving

    async def serve(self, entrypoint: str, request: Request) -> Response:
        """Route and handle one request; the response body keeps this generation busy."""
        table = self.tables.get(entrypoint)
        match = table.route(request) if table is not None else None
        if match is None:
            raise NotFound(f"no router matches {request.method} {request.host}{request.path}")
        request.route = match.info
        self.active += 1
        try:
            response = await match.handler(request)
        except BaseException:
            self.release()
            raise
        response.body = on_body_end(response.body, self._body_ended)
        return response

    async def serve_observed(
        self, entrypoint: str, request: Request, log: AccessLog | None, tracing: Tracing | None
    ) -> Response:
        """`serve`, with the request traced, counted by the metrics and recorded in the access
        log (the gateway's dispatch when an observer is on). Errors become their response here
        (not at the connection), so a 404 or a 502 is traced, counted and logged like any other.

        `serve`'s steps are repeated here rather than awaited: a wrapper coroutine around it
        was one more frame to create per request and one more hop at each of the request's
        suspensions (docs/benchmarks.md, "The metrics' cost on the request path")."""
        start = time.monotonic()
        wall = time.time() if log is not None else 0.0
        # The request's headers as the client sent them, when the log has header fields (taken
        # before routing: middlewares may change them).
        sent = list(request.headers.raw) if log is not None and log.headers is not None else None
        # The trace is in place before routing: the chain and attempt spans are its children.
        trace = tracing.start(request, entrypoint) if tracing is not None else None
        held: LiveGraph | None = None  # this generation, when the log's end callback releases it
        try:
            table = self.tables.get(entrypoint)
            match = table.route(request) if table is not None else None
            if match is None:
                raise NotFound(f"no router matches {request.method} {request.host}{request.path}")
            request.route = match.info
            self.active += 1
            try:
                response = await match.handler(request)
            except BaseException:
                self.release()
                raise
            if log is None:
                response.body = on_body_end(response.body, self._body_ended)
            else:  # the log's end callback releases it (one callback less on the body)
                held = self
        except Exception as exc:
            response = recover(request, exc)
        except BaseException:  # cancelled: the spans end here, or their exporter would wait for them
            if trace is not None:
                trace.cancelled()
            raise
        if trace is not None and trace.server is not None:  # spans recorded
            trace.responded(request, response)
        now = time.monotonic()  # the head is ready: one read for the metrics and the log
        meters = self.meters
        if log is None and meters is None:  # (log first: with both on, one test)
            return response
        # One pass for both observers: one call, the route and state read once.
        return observe(request, response, entrypoint, start, now, meters, log, wall, sent, held)

    def _body_ended(self, _error: BaseException | None) -> None:
        self.release()

    def hold(self) -> Callable[[], None]:
        """Count one more piece of work (a mirror shadow) in flight; call the result when done."""
        self.active += 1
        return self.release

    def release(self) -> None:
        """One request (whose response body is over) or hold of this generation is done."""
        self.active -= 1
        if self.active == 0 and self._idle is not None:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no request of this generation is in flight."""
        while self.active > 0:
            # One event shared by every waiter (each retiring generation waits for all the
            # earlier ones): a fresh event per waiter would leave the others waiting forever.
            if self._idle is None or self._idle.is_set():
                self._idle = anyio.Event()
            await self._idle.wait()

    # ----------------------------------------------------------------------- building

    @classmethod
    async def build(
        cls,
        ir: IRGraph,
        txn: StateTxn,
        env: BuildEnv,
        *,
        generation: int = 1,
        upstream: UpstreamFactory | None = None,
    ) -> LiveGraph:
        graph = cls(ir, generation)
        graph.metrics = env.metrics
        graph._build_entrypoints()
        demo = await graph._start_demo_backends(txn, env)
        graph._build_services(txn, env, demo, upstream or upstream_client)
        graph._build_service_kinds(txn, env)
        graph._build_internal(env)
        graph._build_middlewares(txn, env)
        graph._build_routers()
        # The label children are series the registry exposes at once: made at commit, so a
        # failed reload adds none (the registry is kept across reloads).
        txn.on_commit(graph._build_meters)
        graph._build_tcp(txn, env)
        return graph

    def _ctx(self, node: Node, env: BuildEnv) -> BuildContext:
        trusted = sorted({p for ep in self.entrypoints.values() for p in ep.trusted_proxies})
        return BuildContext(
            node.id,
            node.name,
            env.clock,
            env.env,
            tuple(trusted),
            env.logger,
            publish=env.publish,
            recorder=env.recorder,
            tasks=env.task_group,
        )

    def _build_entrypoints(self) -> None:
        for node in self.ir.by_kind("entrypoint"):
            config = node.config
            assert isinstance(config, EntrypointConfig)
            if config.protocol == "http":
                self.entrypoints[node.name] = config
            elif config.protocol == "tcp":
                self.tcp_entrypoints[node.name] = config
            else:
                self.udp_entrypoints[node.name] = config

    def _http_services(self) -> list[Node]:
        return [
            n
            for n in self.ir.by_kind("service")
            if n.attrs.get("protocol", "http") == "http" and not is_internal(n) and not _kind_of(n)
        ]

    def _build_internal(self, env: BuildEnv) -> None:
        for node in self.ir.by_kind("service"):
            if is_internal(node):
                self.internal[node.name] = internal_service(
                    str(node.attrs["internal"]), self, env.admin, env.metrics
                )

    async def _start_demo_backends(self, txn: StateTxn, env: BuildEnv) -> dict[str, str]:
        """Start (or keep) a demo backend per distinct `demo://` URL; map each to its address."""
        urls = sorted({url for node in self._http_services() for url in _server_urls(node)})
        mapping: dict[str, str] = {}
        for url in (u for u in urls if u.startswith(DEMO_SCHEME)):
            backend = await txn.aobtain(url, "", _demo_starter(url, env.task_group), _stop_demo)
            self.demo_backends[url] = backend
            mapping[url] = backend.url
        return mapping

    @staticmethod
    def _scaling_front(
        node: Node, txn: StateTxn, ctx: BuildContext, env: BuildEnv, demo: Mapping[str, str]
    ) -> Front | None:
        """The scaler or revisions' front of service `node`, None when it has neither; stdlib/scalers
        is imported only for a graph that scales (a worker's idle memory)."""
        config = node.config
        assert isinstance(config, ServiceConfig)
        if not config.revisions and config.scaling is None:
            return None
        from ..stdlib.scalers import scaling_front

        return scaling_front(node, txn, ctx, env.task_group, lambda u: demo.get(u, u))

    def _build_services(
        self, txn: StateTxn, env: BuildEnv, demo: Mapping[str, str], upstream: UpstreamFactory
    ) -> None:
        from .proxy import forward

        for node in self._http_services():
            proxy_node = self.ir.node(f"proxy:{node.name}")
            proxy_config = proxy_node.config if proxy_node is not None else ProxyConfig()
            assert isinstance(proxy_config, ProxyConfig)
            fingerprint = proxy_node.fingerprint if proxy_node is not None else ""
            client = txn.obtain(
                f"proxy:{node.name}", fingerprint, functools.partial(upstream, proxy_config), _close_client
            )
            state = txn.obtain(node.id, "", ServiceState, close_service_state, slot="service")
            bound = _bind_forward(forward, proxy_config, client, traced=self._traced())
            ctx = self._ctx(node, env)
            # Scaled services and revisions pick their backends themselves (stdlib/scalers).
            front = self._scaling_front(node, txn, ctx, env, demo)
            service = HttpService(
                node,
                state,
                ctx,
                forward=bound,
                resolve=lambda u: demo.get(u, u),
                front=front,
                task_group=env.task_group,
                services=self.services,
                commit=txn.on_commit,
                hold=self.hold,
            )
            self.services[node.name] = service
            self.clients[node.name] = client
            timing = getattr(client, "connect_timing", None)
            if timing is not None:  # the connect-time histogram child, or None: at commit
                txn.on_commit(functools.partial(_time_connects, timing, env.metrics, node.name))

    def _build_service_kinds(self, txn: StateTxn, env: BuildEnv) -> None:
        for node in self.ir.by_kind("service"):
            type_name = _kind_of(node)
            if type_name is None:
                continue
            kind = registry.lookup("service", type_name)
            if kind is None:
                raise BuildError(f"{node.id}: no service kind {type_name!r} is registered")
            assert isinstance(node.config, ServiceConfig)
            impl: Any = kind.impl
            options = kind.config.model_validate(node.config.kind_options)
            ctx = self._ctx(node, env)
            create = functools.partial(impl.new_state, options, ctx)
            state = txn.obtain(node.id, node.fingerprint, create, impl.close_state, slot="kind")
            self.service_kinds[node.name] = impl(options, state, ctx, self.services)

    def _traced(self) -> bool:
        settings = self.ir.settings
        return isinstance(settings, Settings) and settings.tracing is not None

    def _build_middlewares(self, txn: StateTxn, env: BuildEnv) -> None:
        for node in self.ir.by_kind("middleware"):
            type_name = str(node.attrs.get("type", ""))
            kind = registry.lookup("middleware", type_name)
            if kind is None:
                raise BuildError(f"{node.id}: no middleware kind {type_name!r} is registered")
            impl: Any = kind.impl
            ctx = self._ctx(node, env)
            create = functools.partial(impl.new_state, node.config, ctx)
            if "http" in kind.protocols and impl.keep_state_across_changes:
                # Kept under the kind's name, not the fingerprint; the new config applies at commit.
                state = txn.obtain(node.id, f"kind:{kind.name}", create, impl.close_state)
                txn.on_commit(functools.partial(impl.reconfigure, state, node.config))
                self.middlewares[node.name] = impl(node.config, state, ctx)
            elif "http" in kind.protocols:
                state = txn.obtain(node.id, node.fingerprint, create, impl.close_state)
                self.middlewares[node.name] = impl(node.config, state, ctx)
            elif "tcp" in kind.protocols:  # tcp-filter: its state admits and releases connections
                self.tcp_filters[node.name] = txn.obtain(node.id, node.fingerprint, create, impl.close_state)

    def _build_routers(self) -> None:
        routes: dict[str, list[tuple[CompiledRule, RouteMatch]]] = {name: [] for name in self.entrypoints}
        # Entrypoints with per-host TLS options check each request's Host against its SNI.
        tls_plans = tls_options_plan(self.ir)
        for node in self.ir.by_kind("router"):
            config = node.config
            assert isinstance(config, RouterConfig)
            service: Handler | None = (
                self.services.get(config.service)
                or self.service_kinds.get(config.service)
                or self.internal.get(config.service)
            )
            if service is None:
                _log.warning("%s: service %r is not an HTTP service; router skipped", node.id, config.service)
                continue
            names = tuple(config.middlewares)
            missing = [m for m in names if m not in self.middlewares]
            if missing:
                raise BuildError(f"{node.id}: middleware {missing[0]!r} is not built")
            denials: list[Denials | None] = []
            direct = self._direct_route(config.service, names)
            if self.metrics is not None:
                service = _reached(service)
                denials = [self._denials(m) for m in names]
            handler = chain([self.middlewares[m] for m in names], service, denials)
            rule = compile_rule(str(node.attrs.get("rule", config.rule)))
            priority = int(node.attrs.get("priority", config.priority or len(config.rule)))
            for entrypoint in self._router_entrypoints(node, config):
                info = RouteInfo(entrypoint, node.name, config.service, names)
                guarded = handler
                plan = tls_plans.get(entrypoint)
                fronted = plan is not None and bool(plan.by_host)
                if plan is not None and plan.by_host:
                    guarded = fronting_guard(handler, dict(plan.by_host))
                match = RouteMatch(info, guarded, priority, None if fronted else direct)
                routes[entrypoint].append((rule, match))
        self.tables = {
            name: RouterTable(name, r, PathPolicy.from_config(self.entrypoints[name].http))
            for name, r in routes.items()
        }

    def _direct_route(self, service: str, middlewares: tuple[str, ...]) -> Any:
        """The callback path's route to `service` (runtime/callback_path.py), or None when
        its requests take the general path (middlewares, tracing, a service or a proxy that
        needs the general path)."""
        if middlewares or self._traced():
            return None
        from .callback_path import DirectRoute

        proxy_node = self.ir.node(f"proxy:{service}")
        proxy_config = proxy_node.config if proxy_node is not None else ProxyConfig()
        if not isinstance(proxy_config, ProxyConfig):
            return None
        return DirectRoute.of(
            self.services.get(service), self.clients.get(service), proxy_config, middlewares
        )

    def _denials(self, middleware: str) -> Denials:
        found = self._denial_counters.get(middleware)
        if found is None:
            assert self.metrics is not None
            node = self.ir.node(f"middleware:{middleware}")
            type_name = str(node.attrs.get("type", "")) if node is not None else ""
            found = self._denial_counters[middleware] = Denials(self.metrics, middleware, type_name)
        return found

    def _build_meters(self) -> None:
        settings = self.ir.settings
        config = getattr(settings, "metrics", None)
        if self.metrics is None or config is None:
            return
        prometheus = config.prometheus
        routers = {
            (node.name, node.config.service)
            for node in self.ir.by_kind("router")
            if isinstance(node.config, RouterConfig)
        }
        self.meters = RequestMeters(
            self.metrics,
            sorted(self.tables),
            sorted(routers),
            sorted({*self.services, *self.internal}),
            entrypoint_labels=prometheus.add_entrypoints_labels,
            router_labels=prometheus.add_routers_labels,
            service_labels=prometheus.add_services_labels,
        )

    def _build_tcp_meters(self) -> None:
        if self.metrics is not None and getattr(self.ir.settings, "metrics", None) is not None:
            self.tcp_meters = TcpMeters(
                self.metrics,
                (
                    (table.entrypoint, route.router, route.service.name)
                    for table in self.tcp_tables.values()
                    for _, route in (*table.tls_routes, *table.plain_routes)
                ),
            )

    def _build_tcp(self, txn: StateTxn, env: BuildEnv) -> None:
        txn.on_commit(self._build_tcp_meters)  # at commit, as the HTTP meters (see `build`)
        tcp_nodes = [n for n in self.ir.by_kind("service") if n.attrs.get("protocol") == "tcp"]
        if not tcp_nodes and not self.tcp_entrypoints and not self.udp_entrypoints:
            return  # runtime/l4 is imported only by a graph with TCP or UDP (a worker's idle memory)
        from .l4 import TcpService, UdpRoute, build_tcp_tables

        for node in tcp_nodes:
            state = txn.obtain(node.id, "", ServiceState, close_service_state, slot="service")
            self.tcp_services[node.name] = TcpService(
                node,
                state,
                self._ctx(node, env),
                commit=txn.on_commit,
                task_group=env.task_group,
                services=self.tcp_services,
            )
        self.tcp_tables = build_tcp_tables(
            self.ir, list(self.tcp_entrypoints), self.tcp_services, self.tcp_filters
        )
        # One UDP router per UDP entrypoint (the compiler refuses more): it takes every datagram.
        for node in self.ir.by_kind("udp_router"):
            service = self.tcp_services.get(getattr(node.config, "service", ""))
            for entrypoint in node.attrs.get("entrypoints", ()):
                if service is not None and entrypoint in self.udp_entrypoints:
                    self.udp_routes[entrypoint] = UdpRoute(node.name, service)

    def _router_entrypoints(self, node: Node, config: RouterConfig) -> list[str]:
        names = [e.dst.partition(":")[2] for e in self.ir.edges_from(node.id, "entrypoint")]
        names = names or list(node.attrs.get("entrypoints") or config.entrypoints) or list(self.entrypoints)
        return [n for n in names if n in self.entrypoints]


def _time_connects(timing: Any, metrics: GatewayMetrics | None, service: str) -> None:
    timing.observe = metrics.metric(UPSTREAM_CONNECT).labels(service).observe if metrics else None


def _reached(service: Handler) -> Handler:
    """`service`, marking the requests that get past the router's middlewares (the service
    series count those). A plain function returning the service's coroutine: no frame."""

    def reach(request: Request) -> Awaitable[Response]:
        request.state[SERVICE_START] = time.monotonic()
        return service(request)

    return reach


def _kind_of(node: Node) -> str | None:
    return node.config.kind if isinstance(node.config, ServiceConfig) else None


def _server_urls(node: Node) -> list[str]:
    config = node.config
    assert isinstance(config, ServiceConfig)
    servers = list(config.load_balancer.servers) if config.load_balancer else []
    servers += [server for revision in config.revisions for server in revision.servers]
    return [s.url for s in servers if s.url]


def _demo_starter(url: str, task_group: anyio.abc.TaskGroup) -> Callable[[], Awaitable[DemoBackend]]:
    async def start() -> DemoBackend:
        backend = DemoBackend(options_from_url(url))
        try:
            await task_group.start(backend.serve)
        except OSError as exc:
            raise BuildError(f"demo backend {url}: {exc}") from exc
        _log.info("demo backend %s listening on %s", url, backend.url)
        return backend

    return start


async def _stop_demo(backend: Any) -> None:
    await backend.aclose()


async def _close_client(client: Any) -> None:
    close = getattr(client, "aclose", None)
    if close is not None:
        await close()


def upstream_client(config: ProxyConfig) -> Any:
    """The upstream client (a keep-alive pool per backend) of one proxy node."""
    from .upstream.client import UpstreamClient

    return UpstreamClient(config)


def _bind_forward(
    forward: Callable[..., Awaitable[Response]], proxy_config: ProxyConfig, client: Any, *, traced: bool
) -> Callable[[Request, Backend], Awaitable[Response]]:
    # Whether the peer is a trusted proxy was decided by the connection (ingress.py drops an
    # untrusted peer's forwarding fields), hence None. A partial, not a closure: no extra
    # coroutine frame per request.
    bound = functools.partial(forward, proxy_config=proxy_config, client=client, entrypoint_trusts_peer=None)
    # With tracing configured, each attempt gets its span and sends its context up; without,
    # the request path does not even check for it.
    return functools.partial(traced_forward, bound) if traced else bound
