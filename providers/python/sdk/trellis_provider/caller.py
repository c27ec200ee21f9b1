"""Who is calling: the identity a Trellis host puts in every call's headers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from . import secrets

WORKLOAD = "Trellis-Workload"
COMPONENT = "Trellis-Component"
BINDING = "Trellis-Binding"
CONFIG = "Trellis-Config"
SECRETS = "Trellis-Secrets"
TRACEPARENT = "traceparent"
#: The longest config or secrets header read.
MAX_HEADER = 64 << 10


class CallerError(Exception):
    """The headers do not name a caller: the call did not come from a Trellis host."""


@dataclass(frozen=True)
class Caller:
    """The workload, component and binding a call came from, with the binding's config."""

    workload: str
    component: str
    binding: str
    #: The binding's config, secret values opened: never log it whole.
    config: dict[str, str] = field(repr=False)
    traceparent: str | None = None

    @staticmethod
    def from_headers(headers: dict[str, str] | None, xkey: str | None) -> "Caller":
        """Reads the caller; ``xkey`` (a seed) opens secret config values."""
        headers = headers or {}

        def required(name: str) -> str:
            value = headers.get(name, "")
            if not value:
                raise CallerError(f"the call has no `{name}` header; only Trellis hosts may call providers")
            return value

        for name in (CONFIG, SECRETS):
            if len(headers.get(name, "")) > MAX_HEADER:
                raise CallerError(f"the `{name}` header is longer than {MAX_HEADER} bytes")
        config: dict[str, str] = {}
        if CONFIG in headers:
            config = _strings(headers[CONFIG], f"the `{CONFIG}` header")
        if SECRETS in headers:
            if xkey is None:
                raise CallerError("the call carries sealed config, and this provider has no xkey (--xkey)")
            try:
                sealed = json.loads(headers[SECRETS])
                if not isinstance(sealed, dict):
                    raise ValueError("not an object")
                for key, value in sealed.items():
                    config[key] = secrets.open_sealed(key, value, xkey)
            except (ValueError, TypeError, KeyError, RecursionError, RuntimeError) as e:
                raise CallerError(f"the `{SECRETS}` header: {e}") from None
        return Caller(
            workload=required(WORKLOAD),
            component=required(COMPONENT),
            binding=headers.get(BINDING, ""),
            config=config,
            traceparent=headers.get(TRACEPARENT),
        )


def _strings(text: str, what: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise CallerError(f"{what} is not JSON: {e}") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise CallerError(f"{what} is not a JSON object of strings")
    return value
