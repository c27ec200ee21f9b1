"""One provider process: its lattice connection, its functions on both
transports, discovery and heartbeat, and a drain on SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import re
import signal
import ssl
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

import nats
import nats.errors

from . import secrets, wit
from .caller import Caller
from .discovery import Discovery
from .transports import CallFailed, Limits, Server

log = logging.getLogger("trellis_provider")

#: How often a replica publishes its heartbeat, as Rust providers do.
HEARTBEAT = 5.0
#: What lattice and provider names must be (they are subject tokens).
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class Call:
    """One call as the handler sees it: who made it, and how."""

    instance: str
    function: str
    headers: dict[str, str] = field(repr=False)
    xkey: str | None = field(repr=False)

    @functools.cached_property
    def caller(self) -> Caller:
        """The calling workload; raises :class:`CallerError` for a call not from a host."""
        return Caller.from_headers(self.headers, self.xkey)


@dataclass(frozen=True)
class Function:
    """A function as its WIT declares it, and the coroutine that serves it."""

    instance: str
    name: str
    params: Sequence[wit.Type]
    results: Sequence[wit.Type]
    handler: Callable[..., Awaitable[Any]]


def _args(name: str) -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(description=f"The Trellis provider `{name}`.")
    p.add_argument("--nats", default=env("NATS_URL", "nats://127.0.0.1:4222"), help="NATS server URL(s), comma separated")
    p.add_argument("--lattice", default=env("TRELLIS_LATTICE", "default"), help="the lattice to join")
    p.add_argument("--name", default=env("TRELLIS_PROVIDER_NAME", name), help="the provider name bindings use")
    p.add_argument("--nats-nkey", default=env("NATS_NKEY"), metavar="FILE", help="the nkey seed to connect with")
    p.add_argument("--nats-user", default=env("NATS_USER"))
    p.add_argument("--nats-password", default=env("NATS_PASSWORD"))
    p.add_argument("--nats-token", default=env("NATS_TOKEN"))
    p.add_argument("--nats-tls-ca", metavar="FILE")
    p.add_argument("--nats-tls-cert", metavar="FILE")
    p.add_argument("--nats-tls-key", metavar="FILE")
    p.add_argument("--js-domain", default=env("NATS_JS_DOMAIN"), metavar="DOMAIN", help="the JetStream domain of the provider's data")
    p.add_argument("--xkey", metavar="FILE", help="the xkey seed secret config is sealed to; default: the .xk file beside --nats-nkey")
    p.add_argument("--drain-timeout", type=float, default=10.0, metavar="SECONDS", help="how long SIGTERM waits for calls in flight")
    p.add_argument("--max-in-flight", type=int, default=Limits.max_in_flight, help="calls handled at once; more are refused as busy")
    p.add_argument("--subject", action="append", default=[], metavar="PATTERN", help="an application subject the lattice grants (repeatable)")
    return p


class Provider:
    """A capability provider: declare its functions, then :meth:`main`.

    ``name`` is the default provider name (``--name`` overrides it); every
    replica of one name shares the calls of its queue group.
    """

    def __init__(self, name: str, version: str, description: str, interfaces: Sequence[str]):
        self.name, self.version, self.description = name, version, description
        self.interfaces = list(interfaces)
        self.functions: dict[tuple[str, str], Function] = {}
        self.parser = _args(name)
        self.nc: nats.aio.client.Client | None = None

    def function(self, instance: str, name: str, params: Sequence[wit.Type], results: Sequence[wit.Type]):
        """Declares ``instance.name`` (wRPC's name: ``bucket.get`` for a method) and its handler.

        The handler is ``async def f(call, *params)`` and returns the result
        (``None`` for none, a tuple for several).
        """
        if instance not in self.interfaces:
            raise ValueError(f"`{instance}` is not one of the interfaces {self.interfaces}")

        def register(handler):
            self.functions[(instance, name)] = Function(instance, name, list(params), list(results), handler)
            return handler

        return register

    def main(self, setup: Callable[[argparse.Namespace], Awaitable[None]] | None = None) -> None:
        """Parses the arguments, runs ``setup`` and serves until SIGTERM or SIGINT."""
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        args = self.parser.parse_args()
        try:
            asyncio.run(self.run(args, setup))
        except (OSError, ValueError, ConnectionError, nats.errors.Error) as e:
            log.error("%s", e)
            sys.exit(1)

    async def _connect(self, args: argparse.Namespace) -> nats.aio.client.Client:
        options: dict[str, Any] = {
            "servers": [u.strip() for u in args.nats.split(",")],
            "name": f"trellis-provider-{args.name}",
            "inbox_prefix": f"_INBOX.{args.lattice}.provider.{args.name}",
            "max_reconnect_attempts": -1,
            "allow_reconnect": True,
            "closed_cb": self._closed,
        }
        if args.nats_nkey:
            options["nkeys_seed"] = args.nats_nkey
        if args.nats_user:
            options["user"], options["password"] = args.nats_user, args.nats_password
        if args.nats_token:
            options["token"] = args.nats_token
        if args.nats_tls_ca or args.nats_tls_cert:
            context = ssl.create_default_context(cafile=args.nats_tls_ca)
            if args.nats_tls_cert:
                context.load_cert_chain(args.nats_tls_cert, args.nats_tls_key)
            options["tls"] = context
        return await nats.connect(**options)

    async def _closed(self) -> None:
        self.stop.set()

    async def _answer(self, instance: str, func: str, data: bytes, headers: dict | None) -> bytes:
        function = self.functions.get((instance, func))
        if function is None:
            raise CallFailed("invalid", f"`{instance}.{func}` is not served here")
        started = time.monotonic_ns()
        error = None
        try:
            try:
                params = wit.decode_values(function.params, data)
            except wit.WireError as e:
                raise CallFailed("invalid", f"the parameters of `{instance}.{func}`: {e}") from None
            call = Call(instance, func, dict(headers or {}), self.xkey)
            try:
                result = await function.handler(call, *params)
                values = [] if not function.results else [result] if len(function.results) == 1 else list(result)
                return wit.encode_values(function.results, values)
            except CallFailed:
                raise
            except Exception as e:  # A handler's bug fails its call, never the process.
                log.warning("`%s.%s` failed: %s: %s", instance, func, type(e).__name__, e)
                log.debug("`%s.%s` failed", instance, func, exc_info=True)
                raise CallFailed("refused", f"the provider failed: {type(e).__name__}: {e}") from None
        except CallFailed as e:
            error = str(e)
            raise
        finally:
            self.discovery.served(instance, func, time.monotonic_ns() - started, error)

    async def run(self, args: argparse.Namespace, setup=None) -> None:
        """Connects, serves every declared function and answers discovery until a signal."""
        for what, name in [("lattice", args.lattice), ("provider name", args.name)]:
            if not _LABEL.fullmatch(name):
                raise ValueError(f"the {what} `{name}` is not a DNS label: 1-63 of a-z, 0-9 and `-`, not at either end")
        self.args = args
        xkey_file = args.xkey or (os.path.splitext(args.nats_nkey)[0] + ".xk" if args.nats_nkey else None)
        self.xkey = secrets.read_seed(xkey_file) if xkey_file and os.path.exists(xkey_file) else None
        # A connection nats-py gives up on (it does on most server errors)
        # ends the process instead of leaving it up and deaf.
        self.stop = asyncio.Event()
        self.nc = nc = await self._connect(args)
        if setup is not None:
            await setup(args)
        prefix = f"trellis.{args.lattice}.provider.{args.name}"
        server = Server(nc, prefix, self._answer, Limits(max_in_flight=args.max_in_flight))
        self.discovery = Discovery(
            name=args.name,
            instance=nc.new_inbox().rsplit(".", 1)[-1],
            version=self.version,
            description=self.description,
            lattice=args.lattice,
            interfaces=self.interfaces,
            prefix=prefix,
            xkey=secrets.public_key(self.xkey) if self.xkey else None,
            functions=list(self.functions),
        )
        for instance, func in self.functions:
            await server.serve(instance, func)

        async def question(msg):
            answer = self.discovery.answer(msg.subject)
            if answer is not None and msg.reply:
                await nc.publish(msg.reply, answer)

        questions = [await nc.subscribe(s, cb=question) for s in self.discovery.subjects()]
        await nc.flush()
        stop = self.stop
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("serving: provider %s, interfaces %s", args.name, ",".join(self.interfaces))
        heartbeat = f"trellis.{args.lattice}.evt.provider.{args.name}.heartbeat"
        while not stop.is_set():
            try:
                await nc.publish(heartbeat, self.discovery.heartbeat(len(server.calls)))
            except nats.errors.Error as e:
                log.warning("cannot publish the heartbeat: %s", e)
            try:
                await asyncio.wait_for(stop.wait(), HEARTBEAT)
            except asyncio.TimeoutError:
                pass
        if nc.is_closed:
            raise ConnectionError("the NATS connection closed for good")
        log.info("draining: %d calls in flight", len(server.calls))
        try:
            await asyncio.wait_for(self._drain(server, questions), args.drain_timeout)
        except asyncio.TimeoutError:
            log.warning("drain timed out after %s s; exiting", args.drain_timeout)
            await server.refuse_unanswered()
        await nc.close()

    async def _drain(self, server: Server, questions) -> None:
        # A draining replica stops being found, then stops taking calls.
        for sub in questions:
            await sub.unsubscribe()
        await server.stop_taking_calls()
        if server.calls:
            await asyncio.wait(set(server.calls))
        await self.nc.flush()
