"""The two ways a call arrives: wrpc-transport-nats (`wrpc.0.0.1`) and `trellis-rr/1`.

Both take the same encoded parameters and give back the same encoded
results; they differ in how many NATS messages a call costs. Every call
goes through :meth:`Server.answer`, which a provider supplies.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Awaitable, Callable

import nats.aio.client
import nats.aio.msg
import nats.errors

log = logging.getLogger("trellis_provider")

WRPC = "wrpc.0.0.1"
RR = "trellis-rr/1"
ERROR_HEADER = "Trellis-Error"
ERROR_KIND_HEADER = "Trellis-Error-Kind"
#: Room kept for headers when deciding whether results fit one message.
HEADROOM = 8 << 10


class CallFailed(Exception):
    """A call that gets no results: ``kind`` is a `Trellis-Error-Kind` (`invalid`, `busy`, …)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass
class Limits:
    """What one call may cost this process."""

    #: Calls handled at once; one more is refused as `busy`.
    max_in_flight: int = 1024
    #: Bytes of parameters a wrpc-transport-nats call may send.
    max_params: int = 8 << 20
    #: How long a wrpc-transport-nats caller may take to finish its parameters.
    params_timeout: float = 10.0
    #: How long it may pause between two parts of them.
    params_idle: float = 2.0


def wrpc_subject(prefix: str, instance: str, func: str) -> str:
    return f"{prefix}.{WRPC}.{instance}.{func}"


def rr_subject(prefix: str, instance: str, func: str) -> str:
    return f"{prefix}.rr.{instance}.{func}"


#: Decodes parameters, runs the function, encodes results; raises CallFailed.
Answer = Callable[[str, str, bytes, dict | None], Awaitable[bytes]]


class Server:
    """Serves functions under ``prefix`` on both transports, in the queue group ``prefix``."""

    def __init__(self, nc: nats.aio.client.Client, prefix: str, answer: Answer, limits: Limits):
        self.nc, self.prefix, self.answer, self.limits = nc, prefix, answer, limits
        self.calls: set[asyncio.Task] = set()
        self.subscriptions = []

    async def serve(self, instance: str, func: str) -> None:
        """Subscribes to both of the function's subjects."""

        async def rr(msg):
            self._spawn(self._rr(instance, func, msg))

        async def wrpc(msg):
            self._spawn(self._wrpc(instance, func, msg))

        for subject, cb in [
            (rr_subject(self.prefix, instance, func), rr),
            (wrpc_subject(self.prefix, instance, func), wrpc),
        ]:
            self.subscriptions.append(await self.nc.subscribe(subject, queue=self.prefix, cb=cb))

    def _spawn(self, call) -> None:
        task = asyncio.get_running_loop().create_task(call)
        self.calls.add(task)
        task.add_done_callback(self.calls.discard)

    async def stop_taking_calls(self) -> None:
        for sub in self.subscriptions:
            try:
                await sub.unsubscribe()
            except nats.errors.Error:
                pass

    def _admit(self) -> None:
        # This call's own task is already in `calls`.
        if len(self.calls) > self.limits.max_in_flight:
            raise CallFailed("busy", f"the callee is answering {self.limits.max_in_flight} calls already")

    async def _rr(self, instance: str, func: str, msg: nats.aio.msg.Msg) -> None:
        if not msg.reply:
            return
        try:
            self._admit()
            results = await self.answer(instance, func, msg.data, msg.headers)
            limit = self.nc.max_payload
            if len(results) + HEADROOM > limit:
                raise CallFailed(
                    "too-large",
                    f"the results are {len(results)} bytes, more than one NATS message takes ({limit}); call over wrpc-transport-nats",
                )
            await self.nc.publish(msg.reply, results)
        except CallFailed as e:
            await self._publish_quietly(msg.reply, b"", {ERROR_HEADER: _header_text(str(e)), ERROR_KIND_HEADER: e.kind})

    async def _wrpc(self, instance: str, func: str, msg: nats.aio.msg.Msg) -> None:
        if not msg.reply:
            return
        reply = msg.reply
        inbox = self.nc.new_inbox()
        chunks = asyncio.Queue()

        async def chunk(m):
            chunks.put_nowait(m.data)

        params = await self.nc.subscribe(f"{inbox}.params", cb=chunk)
        try:
            self._admit()
            # The handshake: where the rest of the parameters go.
            await self.nc.publish(reply, b"", reply=inbox)
            data = bytearray(msg.data)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.limits.params_timeout
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    raise CallFailed("timed-out", f"the parameters did not end within {self.limits.params_timeout} s")
                try:
                    part = await asyncio.wait_for(chunks.get(), min(left, self.limits.params_idle))
                except asyncio.TimeoutError:
                    if loop.time() < deadline:
                        raise CallFailed("timed-out", f"the parameters paused for {self.limits.params_idle} s") from None
                    continue
                if not part:
                    break
                data += part
                if len(data) > self.limits.max_params:
                    raise CallFailed("too-large", f"the parameters pass {self.limits.max_params} bytes")
            results = await self.answer(instance, func, bytes(data), msg.headers)
            step = max(1, self.nc.max_payload - HEADROOM)
            for start in range(0, len(results), step):
                await self.nc.publish(f"{reply}.results", results[start:start + step])
            await self.nc.publish(f"{reply}.results", b"")
        except CallFailed as e:
            # wrpc-transport-nats has no error message: results that end at once
            # tell the caller the call failed, without waiting for its timeout.
            log.warning("call %s.%s over %s failed: %s", instance, func, WRPC, e)
            try:
                await self.nc.publish(f"{reply}.results", b"")
            except nats.errors.Error:
                pass
        finally:
            await params.unsubscribe()

    async def _publish_quietly(self, subject: str, data: bytes, headers: dict) -> None:
        try:
            await self.nc.publish(subject, data, headers=headers)
        except nats.errors.Error as e:
            log.warning("cannot send a reply: %s", e)


def _header_text(text: str) -> str:
    """A header value: one line, bounded."""
    return " ".join(text.split())[:1024]
