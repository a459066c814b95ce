"""A typed client of the admin API (httpx), used by `a3s-gateway status` and `reload`.

    with AdminClient("http://127.0.0.1:9090", auth=("admin", "secret")) as api:
        api.health()["status"]

Every failure is an `AdminError` carrying a message a person can act on (and, for a rejected
reload, the diagnostics), never an httpx traceback.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, TypedDict, cast

import httpx

PREFIX = "/api/gateway/"


class ReloadResult(TypedDict):
    status: str
    generation: int
    changes: dict[str, list[str]]


class AdminError(Exception):
    def __init__(self, message: str, status: int | None = None, payload: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.payload = payload


class AdminClient:
    def __init__(self, base_url: str, *, auth: tuple[str, str] | None = None, timeout: float = 10.0) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), auth=auth, timeout=timeout)

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def health(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._get("health"))

    def routes(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._get("routes"))

    def services(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._get("services"))

    def backends(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._get("backends"))

    def scalers(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._get("scalers"))

    def version(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._get("version"))

    def reload(self) -> ReloadResult:
        """The reload's result; a rejected configuration raises `AdminError` (status 422) whose
        payload holds the diagnostics."""
        return cast(ReloadResult, self._send("POST", "reload"))

    def _get(self, endpoint: str) -> Any:
        return self._send("GET", endpoint)

    def _send(self, method: str, endpoint: str) -> Any:
        url = PREFIX + endpoint
        try:
            response = self._http.request(method, url)
        except httpx.HTTPError as exc:
            raise AdminError(f"cannot reach the admin API at {self._http.base_url}: {exc}") from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code >= 400:
            raise AdminError(_message(response.status_code, url, payload), response.status_code, payload)
        if payload is None:
            raise AdminError(f"{url}: the answer is not JSON (is {self._http.base_url} the admin API?)")
        return payload


def _message(status: int, url: str, payload: Any) -> str:
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return f"{url}: {status} {error['message']}"
    if status == 401:
        return f"{url}: 401 unauthorized (pass --user NAME:PASSWORD)"
    if status == 422:
        return f"{url}: 422 the configuration was rejected; the running configuration keeps serving"
    return f"{url}: HTTP {status}"
