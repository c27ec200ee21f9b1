"""The wasi:keyvalue functions, as their WIT declares them, on a SQLite table."""

from __future__ import annotations

import asyncio
import re
import sqlite3

from trellis_provider import Call, CallerError, Provider
from trellis_provider.wit import (
    BYTES, BOOL, STRING, U64, Borrow, Case, Err, List, Ok, Option, Own, Record, Result, Tuple, Variant,
)

STORE = "wasi:keyvalue/store@0.2.0-draft"
ATOMICS = "wasi:keyvalue/atomics@0.2.0-draft"
BATCH = "wasi:keyvalue/batch@0.2.0-draft"

# wit/deps/keyvalue: the types the functions use.
ERROR = Variant("error", [("no-such-store", None), ("access-denied", None), ("other", STRING)])
KEY_RESPONSE = Record("key-response", [("keys", List(STRING)), ("cursor", Option(U64))])
BUCKET = Borrow("bucket")
#: Keys returned per `list-keys` page.
PAGE = 1000
#: Keys one batch call may name.
MAX_BATCH = 1000

provider = Provider("keyvalue", "0.1.0", "wasi:keyvalue on SQLite, written with the Python SDK", [STORE, ATOMICS, BATCH])
provider.parser.add_argument("--db", required=True, metavar="FILE", help="the SQLite file every workload's buckets live in")

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    workload TEXT NOT NULL, bucket TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
    PRIMARY KEY (workload, bucket, key)
) WITHOUT ROWID
"""


class Store:
    """The SQLite file; calls run one at a time on a worker thread."""

    def __init__(self, path: str):
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(SCHEMA)
        self.lock = asyncio.Lock()

    async def run(self, work):
        async with self.lock:
            return await asyncio.to_thread(work, self.db)


store: Store | None = None


async def setup(args) -> None:
    global store
    store = Store(args.db)


def _name_ok(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9_-]+", name))


def owned(call: Call, handle: bytes) -> tuple[str, str] | None:
    """(workload, bucket) behind ``handle``, if it is the calling workload's."""
    caller = call.caller
    prefix = f"{caller.workload}.".encode()
    if not handle.startswith(prefix):
        return None
    try:
        bucket = handle[len(prefix):].decode()
    except UnicodeDecodeError:
        return None
    return (caller.workload, bucket) if _name_ok(bucket) else None


def keyvalue(handler):
    """Turns a refused caller or a foreign handle into the WIT `access-denied`."""

    async def wrapped(call: Call, handle: bytes, *params):
        try:
            target = owned(call, handle)
        except CallerError:
            return Err(Case("access-denied"))
        if target is None:
            return Err(Case("access-denied"))
        try:
            return Ok(await handler(target, *params))
        except sqlite3.Error as e:
            return Err(Case("other", f"sqlite: {e}"))

    return wrapped


@provider.function(STORE, "open", params=[STRING], results=[Result(Own("bucket"), ERROR)])
async def open_bucket(call: Call, identifier: str):
    try:
        caller = call.caller
    except CallerError:
        return Err(Case("access-denied"))
    bucket = caller.config.get("bucket", identifier)
    if not _name_ok(bucket):
        return Err(Case("other", f"bucket `{bucket}` is not a valid name: use letters, digits, `-` and `_`"))
    return Ok(f"{caller.workload}.{bucket}".encode())


def _get(target, key):
    return lambda db: next((bytes(v) for (v,) in db.execute(
        "SELECT value FROM entries WHERE workload=? AND bucket=? AND key=?", (*target, key))), None)


def _set(target, key, value):
    return lambda db: db.execute(
        "INSERT INTO entries VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET value=excluded.value", (*target, key, value))


def _delete(target, key):
    return lambda db: db.execute("DELETE FROM entries WHERE workload=? AND bucket=? AND key=?", (*target, key))


@provider.function(STORE, "bucket.get", params=[BUCKET, STRING], results=[Result(Option(BYTES), ERROR)])
@keyvalue
async def get(target, key):
    return await store.run(_get(target, key))


@provider.function(STORE, "bucket.set", params=[BUCKET, STRING, BYTES], results=[Result(None, ERROR)])
@keyvalue
async def set_(target, key, value):
    await store.run(_set(target, key, value))


@provider.function(STORE, "bucket.delete", params=[BUCKET, STRING], results=[Result(None, ERROR)])
@keyvalue
async def delete(target, key):
    await store.run(_delete(target, key))


@provider.function(STORE, "bucket.exists", params=[BUCKET, STRING], results=[Result(BOOL, ERROR)])
@keyvalue
async def exists(target, key):
    return await store.run(_get(target, key)) is not None


@provider.function(STORE, "bucket.list-keys", params=[BUCKET, Option(U64)], results=[Result(KEY_RESPONSE, ERROR)])
@keyvalue
async def list_keys(target, cursor):
    start = cursor or 0
    if start >= 1 << 63:
        raise sqlite3.Error(f"cursor {start} is past any key")
    rows = await store.run(lambda db: [k for (k,) in db.execute(
        "SELECT key FROM entries WHERE workload=? AND bucket=? ORDER BY key LIMIT ? OFFSET ?",
        (*target, PAGE + 1, start))])
    more = len(rows) > PAGE
    return {"keys": rows[:PAGE], "cursor": start + PAGE if more else None}


class NotACounter(Exception):
    pass


@provider.function(ATOMICS, "increment", params=[BUCKET, STRING, U64], results=[Result(U64, ERROR)])
@keyvalue
async def increment(target, key, delta):
    def add(db):
        row = _get(target, key)(db)
        if row is not None and len(row) != 8:
            raise NotACounter(f"the value is {len(row)} bytes, not an 8-byte counter")
        total = ((int.from_bytes(row, "little") if row else 0) + delta) % (1 << 64)
        _set(target, key, total.to_bytes(8, "little"))(db)
        return total

    try:
        # One transaction: concurrent increments never lose one another.
        return await store.run(_in_transaction(add))
    except NotACounter as e:
        raise sqlite3.Error(str(e)) from None


PAIR = Tuple(STRING, BYTES)


def _batch(keys) -> None:
    if len(keys) > MAX_BATCH:
        raise sqlite3.Error(f"{len(keys)} keys in one call; at most {MAX_BATCH}")


def _in_transaction(work):
    """``work`` in one transaction: a batch commits once."""

    def run(db):
        db.execute("BEGIN IMMEDIATE")
        try:
            out = work(db)
            db.execute("COMMIT")
            return out
        except BaseException:
            db.execute("ROLLBACK")
            raise

    return run


@provider.function(BATCH, "get-many", params=[BUCKET, List(STRING)], results=[Result(List(Option(PAIR)), ERROR)])
@keyvalue
async def get_many(target, keys):
    _batch(keys)
    values = await store.run(lambda db: [_get(target, k)(db) for k in keys])
    return [None if v is None else (k, v) for k, v in zip(keys, values)]


@provider.function(BATCH, "set-many", params=[BUCKET, List(PAIR)], results=[Result(None, ERROR)])
@keyvalue
async def set_many(target, pairs):
    _batch(pairs)
    await store.run(_in_transaction(lambda db: [_set(target, k, v)(db) for k, v in pairs]))


@provider.function(BATCH, "delete-many", params=[BUCKET, List(STRING)], results=[Result(None, ERROR)])
@keyvalue
async def delete_many(target, keys):
    _batch(keys)
    await store.run(_in_transaction(lambda db: [_delete(target, k)(db) for k in keys]))

def main() -> None:
    """The `trellis-keyvalue-sqlite` command."""
    provider.main(setup)
