//! Property tests of the tar-split reader and of deep verification on hostile
//! input: whatever the bytes, the reader returns entries or a typed error
//! naming a plausible line, and `verify_layer` returns an outcome; neither
//! panics. A few hundred cases each, so the suite stays fast.

use base64::Engine as _;
use dockgc::ids::{ChainId, DiffId};
use dockgc::synth::{SynthSpec, generate};
use dockgc::verify::deep::{Outcome, verify_layer};
use dockgc::verify::tarsplit::{Reader, TarSplitError, read_all};
use flate2::Compression;
use flate2::write::GzEncoder;
use proptest::prelude::*;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;

fn gz(text: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(text).expect("gzip");
    e.finish().expect("gzip")
}

/// Reads everything; checks the error's line is within the text.
fn parse(gz_bytes: &[u8], lines: usize) -> Result<usize, TarSplitError> {
    let mut r = Reader::new(gz_bytes);
    let mut n = 0;
    loop {
        match r.next_entry() {
            Ok(Some(_)) => n += 1,
            Ok(None) => return Ok(n),
            Err(e) => {
                assert!(e.line() >= 1 && e.line() as usize <= lines + 1, "{e}");
                assert!(!e.to_string().is_empty());
                // The reader stays finished after an error.
                assert!(matches!(r.next_entry(), Ok(None)));
                return Err(e);
            }
        }
    }
}

/// A generated root, shared by all cases: (tempdir, a layer's paths, text).
struct Fixture {
    _dir: tempfile::TempDir,
    chain: ChainId,
    diff: DiffId,
    data: PathBuf,
    text: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        generate(dir.path(), &SynthSpec::demo()).expect("generate");
        let db = dir.path().join("image/overlay2/layerdb/sha256");
        let mut layer = None;
        for e in std::fs::read_dir(&db).expect("layerdb") {
            let e = e.expect("entry");
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(c) = ChainId::from_hex(&name) {
                layer = Some((c, e.path()));
                break;
            }
        }
        let (chain, path) = layer.expect("a layer");
        let read = |p: &Path| std::fs::read_to_string(p).expect("read");
        let diff = DiffId::parse(read(&path.join("diff")).trim()).expect("diff id");
        let cache = read(&path.join("cache-id"));
        let mut text = Vec::new();
        flate2::read::MultiGzDecoder::new(
            std::fs::File::open(path.join("tar-split.json.gz")).expect("tar-split"),
        )
        .read_to_end(&mut text)
        .expect("gunzip");
        Fixture {
            chain,
            diff,
            data: dir.path().join("overlay2").join(cache.trim()).join("diff"),
            _dir: dir,
            text,
        }
    })
}

/// Runs deep verification of the fixture layer with `gz_bytes` as its
/// tar-split (in a private layer directory, so cases can run in parallel).
fn verify_with(gz_bytes: &[u8]) -> Outcome {
    let f = fixture();
    let db = tempfile::tempdir().expect("temp dir");
    std::fs::write(db.path().join("tar-split.json.gz"), gz_bytes).expect("write");
    verify_layer(f.chain, &f.diff, db.path(), &f.data, &AtomicU64::new(0)).outcome
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// One line of "JSON soup": mostly tar-split shaped, often wrong.
fn soup_line() -> impl Strategy<Value = String> {
    let kind = prop_oneof![
        Just("1".to_string()),
        Just("2".to_string()),
        Just("0".to_string()),
        Just("3".to_string()),
        Just("-1".to_string()),
        Just("1.5".to_string()),
        Just("\"1\"".to_string()),
        Just("99999999999999999999".to_string()),
    ];
    let text = prop_oneof![
        "[a-z./]{0,12}".prop_map(|s| serde_json::to_string(&s).expect("json")),
        any::<Vec<u8>>().prop_map(|b| format!("\"{}\"", b64(&b))),
        Just("null".to_string()),
        Just("\"!!\"".to_string()),
        Just("\"\\u0000\"".to_string()),
        Just("\"..\\/..\\/x\"".to_string()),
        Just("12".to_string()),
    ];
    let size = prop_oneof![
        Just(None),
        (0i64..5000).prop_map(Some),
        any::<i64>().prop_map(Some),
    ];
    let crc = prop_oneof![
        any::<[u8; 8]>().prop_map(|b| format!("\"{}\"", b64(&b))),
        any::<Vec<u8>>().prop_map(|b| format!("\"{}\"", b64(&b))),
        Just("null".to_string()),
        Just("\"A\"".to_string()),
    ];
    prop_oneof![
        8 => (kind, proptest::option::of(text.clone()), proptest::option::of(text), size, proptest::option::of(crc))
            .prop_map(|(k, name, raw, size, payload)| {
                let mut s = format!("{{\"type\":{k}");
                if let Some(n) = name {
                    s.push_str(&format!(",\"name\":{n}"));
                }
                if let Some(r) = raw {
                    s.push_str(&format!(",\"name_raw\":{r}"));
                }
                if let Some(z) = size {
                    s.push_str(&format!(",\"size\":{z}"));
                }
                if let Some(p) = payload {
                    s.push_str(&format!(",\"payload\":{p}"));
                }
                s.push_str(",\"position\":0}");
                s
            }),
        1 => "[ -~]{0,40}",
        1 => Just(String::new()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_as_the_gz_file(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse(&bytes, usize::MAX - 1);
    }

    #[test]
    fn arbitrary_bytes_after_a_gzip_header(tail in proptest::collection::vec(any::<u8>(), 0..1024)) {
        // A valid member header, then garbage: exercises the inflater.
        let mut bytes = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        bytes.extend(tail);
        let _ = parse(&bytes, usize::MAX - 1);
    }

    #[test]
    fn json_line_soup(lines in proptest::collection::vec(soup_line(), 0..12)) {
        let text = lines.join("\n");
        let n = lines.len();
        match parse(&gz(text.as_bytes()), n) {
            Ok(entries) => prop_assert!(entries <= n),
            Err(e) => prop_assert!(e.line() as usize <= n.max(1)),
        }
    }

    #[test]
    fn flipped_bytes_in_a_valid_tar_split(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
    ) {
        let f = fixture();
        let mut text = f.text.clone();
        for (i, x) in &flips {
            let at = i.index(text.len());
            text[at] ^= x;
        }
        let lines = text.iter().filter(|&&c| c == b'\n').count() + 1;
        let g = gz(&text);
        let _ = parse(&g, lines);
        // Deep verification on the same input returns an outcome.
        let _ = verify_with(&g);
    }

    #[test]
    fn truncated_or_spliced_tar_split(cut in any::<prop::sample::Index>(), dup in any::<bool>()) {
        let f = fixture();
        let at = cut.index(f.text.len());
        // Cutting off only the last line (an empty Segment in legacy
        // tar-splits), with or without the newline before it, or splicing
        // nothing changes nothing.
        let body = &f.text[..f.text.len() - 1];
        let last_line = body.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
        prop_assume!(if dup { at > 0 } else { at + 1 < last_line });
        let mut text = f.text[..at].to_vec();
        if dup {
            text.extend_from_slice(&f.text);
        }
        let g = gz(&text);
        let _ = parse(&g, usize::MAX - 1);
        let out = verify_with(&g);
        prop_assert_ne!(out, Outcome::Verified);
    }

    #[test]
    fn flipped_bytes_in_the_compressed_file(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..3),
    ) {
        let mut g = gz(&fixture().text);
        for (i, x) in &flips {
            let at = i.index(g.len());
            g[at] ^= x;
        }
        let _ = parse(&g, usize::MAX - 1);
        let _ = verify_with(&g);
    }
}

#[test]
fn the_fixture_itself_verifies() {
    let f = fixture();
    assert_eq!(verify_with(&gz(&f.text)), Outcome::Verified);
    assert!(read_all(&gz(&f.text)[..]).is_ok());
}
