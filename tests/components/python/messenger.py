"""A wasi:http handler in Python over trellis:messaging: proves provider bindings through the
host's dynamic wRPC polyfill.

    POST /publish/SUBJECT   publishes the request body on SUBJECT; the body is "published"
    POST /request/SUBJECT   sends the request body to SUBJECT; the body is the reply
A messaging error is a 502 whose body is the provider's message.
"""

from wit_world import exports
from wit_world.imports import producer
from wit_world.imports.types import (
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


def route(request: IncomingRequest) -> tuple[int, bytes]:
    parts = (request.path_with_query() or "/").strip("/").split("/", 1)
    if len(parts) != 2 or parts[0] not in ("publish", "request"):
        return 404, b"use /publish/SUBJECT or /request/SUBJECT\n"
    verb, subject = parts
    body = read_body(request)
    if verb == "publish":
        producer.publish(subject, body)
        return 200, b"published"
    return 200, producer.request(subject, body, 1000)


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
