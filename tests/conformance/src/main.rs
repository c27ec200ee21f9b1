//! Checks a wRPC server against wrpc-transport's encoding: calls each
//! function of `trellis:conformance/types` with wit-bindgen-wrpc bindings,
//! sending the values below and expecting the ones the server's fixtures
//! hold. A server that decodes a parameter wrongly fails that call; one that
//! encodes a result wrongly returns something else, or bytes that do not
//! decode here.
//!
//! `trellis-conformance NATS_URL PREFIX wrpc|rr [INBOX_PREFIX NKEY_SEED_FILE]`
//! (the last two: a host identity on a lattice with permissions)

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use wrpc_transport::{ResourceBorrow, ResourceOwn};

mod bindings {
    wit_bindgen_wrpc::generate!({ path: "wit", world: "client" });
}

use bindings::trellis::conformance::types::{self, Color, Numbers, Perms, Point, Shape, Wide};

/// Bytes of the `large` call each way: more than one NATS message holds.
const LARGE: usize = 2_500_000;

/// Checks one call's results, naming the function in the error; compared by
/// their `Debug` text (generated records do not derive `PartialEq`; floats
/// print exactly).
fn same<T: std::fmt::Debug>(func: &str, got: T, want: T) -> anyhow::Result<()> {
    let (got, want) = (format!("{got:?}"), format!("{want:?}"));
    ensure!(got == want, "{func}: got {got}, expected {want}");
    Ok(())
}

async fn check<C>(wrpc: &C) -> anyhow::Result<usize>
where
    C: wrpc_transport::Invoke<Context = Option<async_nats::HeaderMap>>,
{
    let numbers = types::scalars(
        wrpc,
        None,
        &Numbers {
            a: u8::MAX,
            b: u16::MAX,
            c: u32::MAX,
            d: u64::MAX,
            e: i8::MIN,
            f: i16::MIN,
            g: i32::MIN,
            h: i64::MIN,
            i: 3.25,
            j: -1e300,
        },
    )
    .await
    .context("scalars")?;
    same(
        "numbers",
        numbers,
        Numbers {
            a: 0,
            b: 128,
            c: 300,
            d: 1 << 63,
            e: 127,
            f: -1,
            g: 64,
            h: i64::MAX,
            i: f32::INFINITY,
            j: 2.5e-310,
        },
    )?;

    let texts = types::texts(wrpc, None, true, '🦀', "héllo, wörld")
        .await
        .context("texts")?;
    same("texts", texts, (false, 'é', String::new()))?;

    let all: Bytes = (0..=255u8).collect();
    let lists = types::lists(
        wrpc,
        None,
        &all,
        &["a", "", "ü"],
        &[&[][..], &[1, u32::MAX][..]],
    )
    .await
    .context("lists")?;
    same("lists", lists, (Bytes::new(), vec![], vec![vec![7]]))?;

    let shapes = types::shapes(
        wrpc,
        None,
        &[
            Shape::Circle(2.5),
            Shape::Rect(Point {
                x: 1,
                y: -2,
                label: "p".into(),
            }),
            Shape::Empty,
        ],
        &[Color::Red, Color::Blue],
    )
    .await
    .context("shapes")?;
    same(
        "shapes",
        shapes,
        (
            vec![Shape::Rect(Point {
                x: -5,
                y: 5,
                label: String::new(),
            })],
            vec![Color::Green],
        ),
    )?;

    let flags = types::flags_of(
        wrpc,
        None,
        &(Perms::READ | Perms::EXEC),
        &(Wide::F0 | Wide::F11),
    )
    .await
    .context("flags-of")?;
    same("flags-of", flags, (Perms::empty(), Wide::all()))?;

    let options = types::options(wrpc, None, Some("x"), Some(None))
        .await
        .context("options")?;
    same("options", options, (None, Some(Some(7))))?;

    let results = types::results(wrpc, None, &Ok(7), &Err(Color::Blue), &Ok(()))
        .await
        .context("results")?;
    same("results", results, (Err("no".to_string()), Ok(()), Err(())))?;

    let handle = ResourceBorrow::from(Bytes::from_static(b"handle-1"));
    let own: ResourceOwn<types::Blob> = types::handles(wrpc, None, &handle)
        .await
        .context("handles")?;
    same(
        "handles",
        Bytes::from(own),
        Bytes::from_static(b"\x00\xffpython"),
    )?;

    let sent: Bytes = (0..LARGE).map(|i| (i % 251) as u8).collect();
    let large = types::large(wrpc, None, &sent).await.context("large")?;
    ensure!(
        large.len() == LARGE + 1 && large.iter().enumerate().all(|(i, b)| *b == (i % 253) as u8),
        "large: got {} bytes, not the {} expected",
        large.len(),
        LARGE + 1
    );

    types::nothing(wrpc, None).await.context("nothing")?;
    Ok(10)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, prefix, transport, identity) = match args.as_slice() {
        [url, prefix, transport] => (url, prefix, transport, None),
        [url, prefix, transport, inbox, seed] => (url, prefix, transport, Some((inbox, seed))),
        _ => bail!(
            "usage: trellis-conformance NATS_URL PREFIX wrpc|rr [INBOX_PREFIX NKEY_SEED_FILE]"
        ),
    };
    let mut options = async_nats::ConnectOptions::new();
    if let Some((inbox, seed)) = identity {
        let seed = std::fs::read_to_string(seed).with_context(|| format!("cannot read {seed}"))?;
        options = options
            .custom_inbox_prefix(inbox)
            .nkey(seed.trim().to_string());
    }
    let nats = options.connect(url.as_str()).await?;
    let standard = wrpc_transport_nats::Client::new(nats.clone(), prefix.as_str(), None).await?;
    // wrpc-transport-nats has no error reply: a server that fails a call
    // leaves it unanswered, so the whole check has a deadline.
    let deadline = std::time::Duration::from_secs(60);
    let calls = match transport.as_str() {
        "wrpc" => tokio::time::timeout(deadline, check(&standard)).await,
        "rr" => {
            let lean = trellis_lattice::lean::LeanClient::new(nats, prefix, standard, true);
            tokio::time::timeout(deadline, check(&lean)).await
        }
        other => bail!("unknown transport `{other}`: wrpc or rr"),
    }
    .context("a call got no answer within 60 s")??;
    println!("{calls} calls conform over {transport}");
    Ok(())
}
