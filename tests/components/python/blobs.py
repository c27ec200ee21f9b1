"""A wasi:http handler in Python over wasi:blobstore: proves the host's blobstore and its streams.

    PUT    /C/NAME            streams the request body into object NAME of container C (created if
                              missing): `write-data` first, then the bytes, then `finish`
    GET    /C/NAME            streams the object (404 if absent) from its input stream into the response
    GET    /C/NAME?range=S-E  bytes S..=E via get-data, read at once; a range the host refuses is a
                              416 whose body is the host's error
    GET    /C                 the object names, one per line
    DELETE /C/NAME            removes the object
Any other blobstore error is a 500 with the host's message as the body.
"""

from wit_world import exports
from wit_world.imports import blobstore
from wit_world.imports.streams import InputStream, OutputStream, StreamError_Closed
from wit_world.imports.wasi_blobstore_types import IncomingValue, OutgoingValue
from wit_world.imports.wasi_http_types import (
    Fields,
    IncomingBody,
    IncomingRequest,
    Method_Delete,
    Method_Get,
    Method_Put,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)
from componentize_py_types import Err, Ok

WHOLE = (0, 2**64 - 1)  # get-data's end is clamped to the object's last byte


class HttpError(Exception):
    """An answer other than 200: its status and body."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(body)
        self.status = status
        self.body = body


def copy(src: InputStream, dst: OutputStream) -> None:
    """Copies `src` to `dst` until `src` closes; a failed read raises. `splice` moves
    the bytes inside the host: they never pass through this component's memory."""
    while True:
        try:
            dst.blocking_splice(src, 1 << 20)
        except Err as e:
            if isinstance(e.value, StreamError_Closed):
                break
            raise
    dst.blocking_flush()


def write_all(dst: OutputStream, data: bytes) -> None:
    """Writes all of `data`, waiting whenever the stream has no room."""
    while data:
        room = dst.check_write()
        if room == 0:
            with dst.subscribe() as ready:
                ready.block()
            continue
        dst.write(data[:room])
        data = data[room:]


def put(container_name: str, name: str, request: IncomingRequest) -> bytes:
    if blobstore.container_exists(container_name):
        container = blobstore.get_container(container_name)
    else:
        container = blobstore.create_container(container_name)
    with container:
        value = OutgoingValue.new_outgoing_value()
        container.write_data(name, value)
        body = request.consume()
        with body.stream() as src, value.outgoing_value_write_body() as dst:
            copy(src, dst)
        IncomingBody.finish(body)
        OutgoingValue.finish(value)
        return f"stored {name} ({container.object_info(name).size} bytes)\n".encode()


def get(container_name: str, name: str, query: str) -> bytes | InputStream:
    with blobstore.get_container(container_name) as container:
        if not container.has_object(name):
            raise HttpError(404, f"no object {name}\n")
        if not query.startswith("range="):
            value = container.get_data(name, *WHOLE)
            return IncomingValue.incoming_value_consume_async(value)
        try:
            start, end = (int(n) for n in query[len("range="):].split("-"))
        except ValueError:
            raise HttpError(400, f"bad range {query}\n")
        try:
            value = container.get_data(name, start, end)
        except Err as e:
            raise HttpError(416, f"range refused: {e.value}\n")
        return IncomingValue.incoming_value_consume_sync(value)


def list_names(container_name: str) -> bytes:
    names: list[str] = []
    with blobstore.get_container(container_name) as container:
        with container.list_objects() as stream:
            done = False
            while not done:
                page, done = stream.read_stream_object_names(100)
                names.extend(page)
    return "".join(f"{n}\n" for n in names).encode()


def delete(container_name: str, name: str) -> bytes:
    with blobstore.get_container(container_name) as container:
        container.delete_object(name)
    return f"deleted {name}\n".encode()


def route(request: IncomingRequest) -> bytes | InputStream:
    path, _, query = (request.path_with_query() or "/").partition("?")
    parts = path.strip("/").split("/", 1)
    method = request.method()
    if len(parts) == 1 and parts[0] and isinstance(method, Method_Get):
        return list_names(parts[0])
    if len(parts) != 2 or not parts[1]:
        raise HttpError(404, "use /CONTAINER/NAME\n")
    if isinstance(method, Method_Put):
        return put(parts[0], parts[1], request)
    if isinstance(method, Method_Get):
        return get(parts[0], parts[1], query)
    if isinstance(method, Method_Delete):
        return delete(parts[0], parts[1])
    raise HttpError(405, "use GET, PUT or DELETE\n")


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        try:
            status, body = 200, route(request)
        except HttpError as e:
            status, body = e.status, e.body.encode()
        except Err as e:
            status, body = 500, f"blobstore error: {e.value}\n".encode()

        response = OutgoingResponse(Fields.from_list([("content-type", b"application/octet-stream")]))
        response.set_status_code(status)
        out = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with out.write() as stream:
            if isinstance(body, InputStream):
                with body:
                    copy(body, stream)
            else:
                write_all(stream, body)
                stream.blocking_flush()
        OutgoingBody.finish(out, None)
