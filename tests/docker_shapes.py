"""Docker Engine API answers in the shapes a real engine returns (API v1.43, trimmed of fields
the docker provider never reads but keeping their neighbours), for the docker provider's tests.

`inspect(...)` is `GET /containers/{id}/json`; `summary(...)` one item of `GET /containers/json`;
`event(...)` one line of `GET /events`.
"""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["event", "inspect", "summary"]


def container_id(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def inspect(
    name: str,
    labels: dict[str, str],
    ip: str = "172.17.0.2",
    exposed: tuple[int, ...] = (8080,),
    *,
    running: bool = True,
    health: str | None = None,
    network: str = "bridge",
) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Status": "running" if running else "exited", "Running": running, "Paused": False,
        "Restarting": False, "OOMKilled": False, "Dead": False, "Pid": 4242 if running else 0,
        "ExitCode": 0, "Error": "", "StartedAt": "2026-12-05T19:00:00.000000000Z",
        "FinishedAt": "0001-01-01T00:00:00Z",
    }  # fmt: skip
    if health is not None:
        state["Health"] = {"Status": health, "FailingStreak": 0, "Log": []}
    return {
        "Id": container_id(name),
        "Created": "2026-12-05T18:59:59.000000000Z",
        "Path": "/app/server",
        "Args": [],
        "State": state,
        "Image": "sha256:" + "ab" * 32,
        "Name": "/" + name,
        "RestartCount": 0,
        "Config": {
            "Hostname": container_id(name)[:12],
            "ExposedPorts": {f"{p}/tcp": {} for p in exposed},
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Image": "example/llm:latest",
            "Labels": labels,
        },
        "NetworkSettings": {
            "Ports": {f"{p}/tcp": None for p in exposed},
            "Networks": {
                network: {
                    "IPAMConfig": None,
                    "Links": None,
                    "Aliases": None,
                    "NetworkID": hashlib.sha256(network.encode()).hexdigest(),
                    "EndpointID": hashlib.sha256(name.encode() + b"ep").hexdigest(),
                    "Gateway": "172.17.0.1",
                    "IPAddress": ip,
                    "IPPrefixLen": 16,
                    "IPv6Gateway": "",
                    "GlobalIPv6Address": "",
                    "GlobalIPv6PrefixLen": 0,
                    "MacAddress": "02:42:ac:11:00:02",
                    "DNSNames": None,
                }
            },
        },
    }


def summary(info: dict[str, Any]) -> dict[str, Any]:
    """The `GET /containers/json` item of an inspected container."""
    return {
        "Id": info["Id"],
        "Names": [info["Name"]],
        "Image": info["Config"]["Image"],
        "ImageID": info["Image"],
        "Command": info["Path"],
        "Created": 1796497199,
        "Ports": [
            {"PrivatePort": int(p.split("/")[0]), "Type": "tcp"} for p in info["Config"]["ExposedPorts"]
        ],
        "Labels": info["Config"]["Labels"],
        "State": info["State"]["Status"],
        "Status": "Up 1 minute",
        "HostConfig": {"NetworkMode": "bridge"},
        "NetworkSettings": {"Networks": info["NetworkSettings"]["Networks"]},
        "Mounts": [],
    }


def event(action: str, info: dict[str, Any], time: int = 1796497200) -> dict[str, Any]:
    """One `GET /events` line: a container event (start, die, health_status: healthy, ...)."""
    attributes = {
        **info["Config"]["Labels"],
        "image": info["Config"]["Image"],
        "name": info["Name"].lstrip("/"),
    }
    return {
        "status": action, "id": info["Id"], "from": info["Config"]["Image"], "Type": "container",
        "Action": action, "Actor": {"ID": info["Id"], "Attributes": attributes}, "scope": "local",
        "time": time, "timeNano": time * 1_000_000_000,
    }  # fmt: skip
