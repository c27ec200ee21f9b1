"""Answers a request to `/<name>` with the secret `name` through trellis:secrets:
`secret: <value>`, or `error: <kind>: <message>` when the host refuses it.
"""

from wit_world import exports
from wit_world.imports import reveal, store
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)
from componentize_py_types import Err, Ok


def answer(name: str) -> str:
    try:
        secret = store.get(name)
    except Err as e:
        return f"error: {type(e.value).__name__}: {e.value.value}"
    with secret:
        return f"secret: {reveal.reveal(secret)}"


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        name = (request.path_with_query() or "/").lstrip("/")
        text = (answer(name) + "\n").encode()
        response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
        response.set_status_code(200)
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with body.write() as stream:
            stream.blocking_write_and_flush(text)
        OutgoingBody.finish(body, None)
