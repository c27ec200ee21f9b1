//! The built-in `wasi:blobstore`: a Python component stores, lists, slices and deletes objects.

use crate::python::python_component;
use crate::support::{Dev, Reply, TestResult, delete, get, put};

/// `len` printable ASCII bytes from a fixed xorshift sequence: varied, and exact as a `String`.
pub fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b' ' + (x % 95) as u8
        })
        .collect()
}

fn check(reply: Reply, status: u16, body: &[u8], what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.body);
    assert!(
        reply.body.as_bytes() == body,
        "{what}: wrong body ({} bytes)",
        reply.body.len()
    );
}

#[tokio::test]
async fn objects_are_stored_listed_sliced_and_deleted() -> TestResult {
    let wasm = python_component("blobs")?;
    let dev = Dev::start(&wasm)?;
    exercise(dev.addr).await
}

/// Stores, lists, slices and deletes objects through the `blobs` component at
/// `addr`, checking every answer; the same for every backend.
pub async fn exercise(addr: std::net::SocketAddr) -> TestResult {
    let small = b"hello, blobstore".to_vec();
    let big = noise(1 << 20);

    let reply = put(addr, "/c/small", small.clone()).await?;
    check(reply, 200, b"stored small (16 bytes)\n", "put small");
    let reply = put(addr, "/c/big", big.clone()).await?;
    check(reply, 200, b"stored big (1048576 bytes)\n", "put big");

    check(
        get(addr, "localhost", "/c/small").await?,
        200,
        &small,
        "get small",
    );
    check(
        get(addr, "localhost", "/c/big").await?,
        200,
        &big,
        "get big",
    );
    check(
        get(addr, "localhost", "/c").await?,
        200,
        b"big\nsmall\n",
        "list",
    );

    let reply = get(addr, "localhost", "/c/big?range=1000-1999").await?;
    check(reply, 200, &big[1000..2000], "range inside");
    let reply = get(addr, "localhost", "/c/small?range=7-999").await?;
    check(reply, 200, b"blobstore", "range clamped at the end");

    let reply = get(addr, "localhost", "/c/small?range=100-200").await?;
    let expected =
        b"range refused: bad range for object `small`: start 100 is past its end (16 bytes)\n";
    check(reply, 416, expected, "range past the end");
    let reply = get(addr, "localhost", "/c/small?range=5-2").await?;
    let expected = b"range refused: bad range for object `small`: start 5 is after end 2\n";
    check(reply, 416, expected, "range backwards");
    let reply = get(addr, "localhost", "/nope/x").await?;
    check(
        reply,
        500,
        b"blobstore error: container `nope` does not exist\n",
        "no container",
    );

    check(
        delete(addr, "/c/small").await?,
        200,
        b"deleted small\n",
        "delete",
    );
    check(
        get(addr, "localhost", "/c/small").await?,
        404,
        b"no object small\n",
        "gone",
    );
    check(
        get(addr, "localhost", "/c").await?,
        200,
        b"big\n",
        "list after delete",
    );
    Ok(())
}
