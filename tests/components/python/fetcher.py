"""Fetches `http://<authority>/` for a request to `/<authority>` and answers with what happened:
`status N`, or `error: <ErrorCode>` when the host refused or the request failed.
"""

from wit_world import exports
from wit_world.imports import outgoing_handler
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingRequest,
    OutgoingResponse,
    ResponseOutparam,
    Scheme_Http,
)
from componentize_py_types import Err, Ok


def fetch(authority: str) -> str:
    request = OutgoingRequest(Fields())
    request.set_scheme(Scheme_Http())
    request.set_authority(authority)
    request.set_path_with_query("/")
    try:
        future = outgoing_handler.handle(request, None)
    except Err as e:
        return f"error: {type(e.value).__name__}"
    future.subscribe().block()
    outcome = future.get()
    if outcome is None:
        return "error: no response"
    if isinstance(outcome, Err):
        return "error: response taken"
    inner = outcome.value
    if isinstance(inner, Err):
        return f"error: {type(inner.value).__name__}"
    return f"status {inner.value.status()}"


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        authority = (request.path_with_query() or "/").lstrip("/")
        text = (fetch(authority) + "\n").encode()
        response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
        response.set_status_code(200)
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with body.write() as stream:
            stream.blocking_write_and_flush(text)
        OutgoingBody.finish(body, None)
