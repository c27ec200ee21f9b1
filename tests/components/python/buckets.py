"""A wasi:http handler in Python over several wasi:keyvalue buckets: proves named bindings.

    POST /B/KEY   increments KEY in bucket B; the body is the new count
    PUT  /B/KEY   stores the request body under KEY in bucket B
    GET  /B/KEY   the value of KEY in bucket B (404 if absent)
A keyvalue error is a 503 whose body is the host's message.
"""

from wit_world import exports
from wit_world.imports import atomics, store
from wit_world.imports.types import (
    Fields,
    IncomingBody,
    IncomingRequest,
    Method_Get,
    Method_Post,
    Method_Put,
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
    if len(parts) != 2 or not all(parts):
        return 404, b"use /BUCKET/KEY\n"
    bucket_name, key = parts
    method = request.method()
    with store.open(bucket_name) as bucket:
        if isinstance(method, Method_Post):
            return 200, str(atomics.increment(bucket, key, 1)).encode()
        if isinstance(method, Method_Put):
            value = read_body(request)
            bucket.set(key, value)
            return 200, f"stored {len(value)} bytes\n".encode()
        if isinstance(method, Method_Get):
            value = bucket.get(key)
            return (404, b"absent\n") if value is None else (200, value)
    return 405, b"use GET, PUT or POST\n"


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        try:
            status, body = route(request)
        except Err as e:
            status, body = 503, f"keyvalue error: {e.value}\n".encode()

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
