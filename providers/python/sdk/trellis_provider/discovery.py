"""NATS micro discovery: each replica answers `$SRV.PING`, `$SRV.INFO` and `$SRV.STATS` itself.

The answers are the ones `nats micro ls|info|stats` reads, with the lattice,
interfaces, transports and xkey in the metadata (the keys Trellis hosts look
for); endpoints list the functions served, without a second subscription.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .transports import RR, WRPC, rr_subject

API = "$SRV"
VERBS = ("PING", "INFO", "STATS")
#: The longest `last_error` kept.
MAX_LAST_ERROR = 256


@dataclass
class EndpointCounters:
    requests: int = 0
    errors: int = 0
    last_error: str = ""
    busy_ns: int = 0


@dataclass
class Discovery:
    """What a replica says about itself."""

    name: str
    instance: str
    version: str
    description: str
    lattice: str
    interfaces: list[str]
    prefix: str
    xkey: str | None = None
    functions: list[tuple[str, str]] = field(default_factory=list)
    counters: dict[tuple[str, str], EndpointCounters] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def subjects(self) -> list[str]:
        """The nine subjects this replica answers on."""
        return [
            s
            for verb in VERBS
            for s in (f"{API}.{verb}", f"{API}.{verb}.{self.name}", f"{API}.{verb}.{self.name}.{self.instance}")
        ]

    def metadata(self) -> dict[str, str]:
        meta = {
            "trellis.lattice": self.lattice,
            "trellis.interfaces": ",".join(self.interfaces),
            "trellis.transports": f"{WRPC},{RR}",
        }
        if self.xkey:
            meta["trellis.xkey"] = self.xkey
        return meta

    def served(self, instance: str, func: str, took_ns: int, error: str | None) -> None:
        """Counts one call."""
        c = self.counters.setdefault((instance, func), EndpointCounters())
        c.requests += 1
        c.busy_ns += took_ns
        if error is not None:
            c.errors += 1
            c.last_error = error[:MAX_LAST_ERROR]

    def _endpoint(self, instance: str, func: str) -> dict:
        lean = rr_subject(self.prefix, instance, func)
        return {
            "name": re.sub(r"[^A-Za-z0-9_-]", "_", f"{instance}.{func}"),
            "subject": lean,
            "queue_group": self.prefix,
            "metadata": {
                "trellis.instance": instance,
                "trellis.function": func,
                "trellis.wrpc_subject": f"{self.prefix}.{WRPC}.{instance}.{func}",
                "trellis.rr_subject": lean,
            },
        }

    def answer(self, subject: str) -> bytes | None:
        """The answer to a question on ``subject``, if it asks one of ours."""
        parts = subject.split(".")
        if len(parts) < 2 or parts[0] != API or parts[1] not in VERBS:
            return None
        verb = parts[1]
        common = {"name": self.name, "id": self.instance, "version": self.version, "metadata": self.metadata()}
        if verb == "PING":
            body = {"type": "io.nats.micro.v1.ping_response", **common}
        elif verb == "INFO":
            body = {
                "type": "io.nats.micro.v1.info_response",
                **common,
                "description": self.description,
                "endpoints": [self._endpoint(i, f) for i, f in self.functions],
            }
        else:
            stats = []
            for i, f in self.functions:
                c = self.counters.get((i, f), EndpointCounters())
                e = self._endpoint(i, f)
                stats.append({
                    "name": e["name"],
                    "subject": e["subject"],
                    "queue_group": e["queue_group"],
                    "num_requests": c.requests,
                    "num_errors": c.errors,
                    "last_error": c.last_error,
                    "processing_time": c.busy_ns,
                    "average_processing_time": c.busy_ns // c.requests if c.requests else 0,
                })
            started = datetime.fromtimestamp(self.started, timezone.utc).isoformat().replace("+00:00", "Z")
            body = {"type": "io.nats.micro.v1.stats_response", **common, "started": started, "endpoints": stats}
        return json.dumps(body).encode()

    def heartbeat(self, in_flight: int) -> bytes:
        """The provider info published on the lattice's heartbeat subject."""
        info = {
            "name": self.name,
            "instance": self.instance,
            "version": self.version,
            "interfaces": self.interfaces,
            "uptime_seconds": int(time.time() - self.started),
            "in_flight": in_flight,
            "transports": [RR],
        }
        if self.xkey:
            info["xkey"] = self.xkey
        return json.dumps(info).encode()
