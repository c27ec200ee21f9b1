"""A wasi:http handler in Python: proves a componentize-py guest runs on Trellis unchanged.

It answers with a greeting taken from wasi:config, the request's method and path, and the size
of the request body it read through wasi:io streams.
"""

from wit_world import exports
from wit_world.imports import store
from wit_world.imports.types import (
    Fields,
    IncomingBody,
    IncomingRequest,
    Method_Get,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)
from componentize_py_types import Ok


def read_body(request: IncomingRequest) -> int:
    """Reads the whole request body, returning its size in bytes."""
    size = 0
    body = request.consume()
    with body.stream() as stream:
        while True:
            try:
                chunk = stream.blocking_read(65536)
            except Exception:
                break  # end of stream
            size += len(chunk)
    IncomingBody.finish(body)
    return size


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        method = "GET" if isinstance(request.method(), Method_Get) else "OTHER"
        path = request.path_with_query() or "/"
        greeting = store.get("greeting") or "hello"
        size = read_body(request)
        print(f"python guest: {method} {path}")  # goes to wasi:cli stdout

        text = f"{greeting} from python: {method} {path} ({size} bytes)\n".encode()
        response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
        response.set_status_code(200)
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with body.write() as stream:
            stream.blocking_write_and_flush(text)
        OutgoingBody.finish(body, None)
