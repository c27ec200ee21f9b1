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
    """What calls may cost this process (the Rust SDK's `ServerLimits`)."""

    #: Calls handled at once; one more is refused as `busy`.
    max_in_flight: int = 1024
    #: wrpc-transport-nats calls still receiving their parameters at once.
    max_collecting: int = 32
    #: Bytes of parameters a wrpc-transport-nats call may send.
    max_params: int = 4 << 20
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
    """Serves functions under ``prefix`` on both transports, in the queue group ``prefix``.

    A call is admitted (or refused as `busy`) before any task or
    subscription is made for it, so a flood costs a reply each and nothing more.
    """

    def __init__(self, nc: nats.aio.client.Client, prefix: str, answer: Answer, limits: Limits):
        self.nc, self.prefix, self.answer, self.limits = nc, prefix, answer, limits
        self.calls: set[asyncio.Task] = set()
        self.collecting = 0
        self.subscriptions = []
        #: Reply subjects of trellis-rr/1 calls not answered yet.
        self.unanswered: set[str] = set()

    async def serve(self, instance: str, func: str) -> None:
        """Subscribes to both of the function's subjects."""

        async def rr(msg):
            if not msg.reply:
                return
            if len(self.calls) >= self.limits.max_in_flight:
                await self._refuse(msg.reply, self._busy())
                return
            self._spawn(self._rr(instance, func, msg))

        async def wrpc(msg):
            if not msg.reply:
                return
            if len(self.calls) >= self.limits.max_in_flight or self.collecting >= self.limits.max_collecting:
                await self._end_without_results(msg.reply, handshake=True)
                return
            self.collecting += 1
            self._spawn(self._wrpc(instance, func, msg))

        for subject, cb in [
            (rr_subject(self.prefix, instance, func), rr),
            (wrpc_subject(self.prefix, instance, func), wrpc),
        ]:
            self.subscriptions.append(await self.nc.subscribe(subject, queue=self.prefix, cb=cb))

    def _busy(self) -> CallFailed:
        return CallFailed("busy", f"the callee is answering {self.limits.max_in_flight} calls already")

    def _spawn(self, call) -> None:
        task = asyncio.get_running_loop().create_task(call)
        self.calls.add(task)
        task.add_done_callback(self.calls.discard)

    async def stop_taking_calls(self) -> None:
        """Stops taking calls, handing on those already delivered to this process."""
        for sub in self.subscriptions:
            try:
                await sub.drain()
            except nats.errors.Error:
                pass

    async def refuse_unanswered(self) -> None:
        """At the end of a drain that timed out: every waiting caller hears it at once."""
        failure = CallFailed("refused", "the provider stopped before answering")
        for reply in list(self.unanswered):
            await self._refuse(reply, failure)

    async def _rr(self, instance: str, func: str, msg: nats.aio.msg.Msg) -> None:
        self.unanswered.add(msg.reply)
        try:
            results = await self.answer(instance, func, msg.data, msg.headers)
            limit = self.nc.max_payload
            if len(results) + HEADROOM > limit:
                raise CallFailed(
                    "too-large",
                    f"the results are {len(results)} bytes, more than one NATS message takes ({limit}); call over wrpc-transport-nats",
                )
            await self.nc.publish(msg.reply, results)
        except CallFailed as e:
            await self._refuse(msg.reply, e)
        except nats.errors.Error as e:
            log.warning("cannot answer a call of %s.%s: %s", instance, func, e)
        finally:
            self.unanswered.discard(msg.reply)

    async def _wrpc(self, instance: str, func: str, msg: nats.aio.msg.Msg) -> None:
        reply = msg.reply
        inbox = self.nc.new_inbox()
        chunks: asyncio.Queue = asyncio.Queue()
        params = None
        collecting = True
        try:
            async def chunk(m):
                chunks.put_nowait(m.data)

            params = await self.nc.subscribe(f"{inbox}.params", cb=chunk)
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
                if len(data) + len(part) > self.limits.max_params:
                    raise CallFailed("too-large", f"the parameters pass {self.limits.max_params} bytes")
                data += part
            await params.unsubscribe()
            params = None
            self.collecting -= 1
            collecting = False
            results = await self.answer(instance, func, data, msg.headers)
            step = max(1, self.nc.max_payload - HEADROOM)
            for start in range(0, len(results), step):
                await self.nc.publish(f"{reply}.results", results[start:start + step])
            await self.nc.publish(f"{reply}.results", b"")
        except CallFailed as e:
            log.debug("call %s.%s over %s failed: %s", instance, func, WRPC, e)
            await self._end_without_results(reply, handshake=False)
        except nats.errors.Error as e:
            log.warning("cannot answer a call of %s.%s: %s", instance, func, e)
        finally:
            if collecting:
                self.collecting -= 1
            if params is not None:
                try:
                    await params.unsubscribe()
                except nats.errors.Error:
                    pass

    async def _refuse(self, reply: str, failure: CallFailed) -> None:
        headers = {ERROR_HEADER: _header_text(str(failure)), ERROR_KIND_HEADER: failure.kind}
        try:
            await self.nc.publish(reply, b"", headers=headers)
        except nats.errors.Error as e:
            log.warning("cannot send a reply: %s", e)

    async def _end_without_results(self, reply: str, handshake: bool) -> None:
        """wrpc-transport-nats has no error message: results that end at once
        tell the caller the call failed. Its client waits for the handshake
        before anything else, so a refused call gets one first."""
        try:
            if handshake:
                await self.nc.publish(reply, b"", reply=self.nc.new_inbox())
            await self.nc.publish(f"{reply}.results", b"")
        except nats.errors.Error as e:
            log.warning("cannot end a call: %s", e)


def _header_text(text: str) -> str:
    """A header value: one line, bounded."""
    return " ".join(text.split())[:1024]
