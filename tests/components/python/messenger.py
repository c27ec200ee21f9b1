"""A wasi:http handler in Python over trellis:messaging: proves provider bindings through the
host's dynamic wRPC polyfill, delivery to an exported handler, and JetStream consumers.

    POST /publish/SUBJECT           publishes the request body on SUBJECT; the body is "published"
    POST /request/SUBJECT           sends the request body to SUBJECT; the body is the reply
    POST /js/create/STREAM/NAME     creates durable consumer NAME (query: from=SEQ, ack-wait=MS)
    POST /js/fetch/STREAM/NAME      fetches (query: max=N); one line per message:
                                    "SEQUENCE DELIVERED SUBJECT BODY TOKEN"
    POST /js/ack, POST /js/nak      acks or naks the token in the request body
A messaging error is a 502 whose body is the provider's message.

Delivered messages: a message on `greet.NAME` is answered "hello, BODY (NAME)"; one on
`fail.…` is refused with an error.
"""

from typing import Optional

from wit_world import exports
from wit_world.imports import jetstream, producer
from wit_world.imports.trellis_messaging_types import Message
from wit_world.imports.wasi_http_types import (
    Fields,
    IncomingBody,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)
from componentize_py_types import Err, Ok


def read_body(request: IncomingRequest) -> bytes:
    body = request.consume()
    out = bytearray()
    with body.stream() as src:
        while True:
            try:
                out += src.blocking_read(65536)
            except Exception:
                break  # end of stream
    IncomingBody.finish(body)
    return bytes(out)


def query(path: str) -> tuple[str, dict[str, str]]:
    path, _, q = path.partition("?")
    params = dict(p.partition("=")[::2] for p in q.split("&") if p)
    return path, params


def consume(verb: str, rest: str, params: dict[str, str], body: bytes) -> bytes:
    if verb == "ack":
        jetstream.ack(body.decode())
        return b"acked"
    if verb == "nak":
        jetstream.nak(body.decode())
        return b"naked"
    stream, _, name = rest.partition("/")
    if verb == "create":
        start = params.get("from")
        jetstream.create_consumer(
            jetstream.ConsumerConfig(
                stream=stream,
                name=name,
                filter_subject=None,
                start_sequence=int(start) if start else None,
                ack_wait_ms=int(params.get("ack-wait", "30000")),
            )
        )
        return b"created"
    if verb == "fetch":
        messages = jetstream.fetch(stream, name, int(params.get("max", "10")), 500)
        return b"".join(
            f"{m.sequence} {m.delivered} {m.subject} {m.body.decode()} {m.ack_token}\n".encode()
            for m in messages
        )
    raise LookupError()


def route(request: IncomingRequest) -> tuple[int, bytes]:
    path, params = query(request.path_with_query() or "/")
    parts = path.strip("/").split("/", 1)
    if len(parts) == 2 and parts[0] == "js":
        verb, _, rest = parts[1].partition("/")
        try:
            return 200, consume(verb, rest, params, read_body(request))
        except LookupError:
            return 404, b"use /js/create, /js/fetch, /js/ack or /js/nak\n"
    if len(parts) != 2 or parts[0] not in ("publish", "request"):
        return 404, b"use /publish/SUBJECT or /request/SUBJECT\n"
    verb, subject = parts
    body = read_body(request)
    if verb == "publish":
        producer.publish(subject, body)
        return 200, b"published"
    return 200, producer.request(subject, body, 1000)


class Handler(exports.Handler):
    def handle_message(self, message: Message) -> Optional[bytes]:
        if message.subject.startswith("fail."):
            raise Err(f"refusing {message.subject}")
        name = message.subject.rpartition(".")[2]
        return f"hello, {message.body.decode()} ({name})".encode()


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        try:
            status, body = route(request)
        except Err as e:
            status, body = 502, f"messaging error: {e.value}\n".encode()

        response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
        response.set_status_code(status)
        out = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with out.write() as stream:
            while body:
                room = stream.check_write()
                if room == 0:
                    with stream.subscribe() as ready:
                        ready.block()
                    continue
                stream.write(body[:room])
                body = body[room:]
            stream.blocking_flush()
        OutgoingBody.finish(out, None)
