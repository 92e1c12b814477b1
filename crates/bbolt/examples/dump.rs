//! Prints a bbolt file as an indented tree: `cargo run -p bbolt-ro --example dump FILE`.

use bbolt::{Bucket, Db, Entry};

fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let printable = !text.contains('\u{fffd}') && !bytes.iter().any(|b| b.is_ascii_control());
    let s = if printable {
        text.into_owned()
    } else {
        format!(
            "0x{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    };
    if s.len() > 100 {
        format!(
            "{}… ({} bytes)",
            s.chars().take(100).collect::<String>(),
            bytes.len()
        )
    } else {
        s
    }
}

fn dump(b: Bucket<'_>, depth: usize) {
    for (k, e) in b.iter() {
        let pad = "  ".repeat(depth);
        match e {
            Entry::Value(v) => println!("{pad}{} = {}", show(k), show(v)),
            Entry::Bucket(sub) => {
                let kind = if sub.is_inline() { "inline" } else { "paged" };
                println!("{pad}{}/ ({kind}, seq {})", show(k), sub.sequence());
                dump(sub, depth + 1);
            }
        }
    }
}

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: dump FILE");
        std::process::exit(2);
    };
    match Db::open(&path) {
        Ok(db) => {
            println!("# {:?}", db.meta());
            println!("# {:?}", db.stats());
            match db.check() {
                Ok(r) => println!(
                    "# check: {} pages, {} reachable, {} free, leaked {:?}",
                    r.pages, r.reachable, r.free, r.leaked
                ),
                Err(e) => println!("# check: {e}"),
            }
            dump(db.root(), 0);
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
