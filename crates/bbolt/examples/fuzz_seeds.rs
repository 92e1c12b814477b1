//! Writes small generated files as seeds for the fuzzer:
//! `cargo run -p bbolt-ro --example fuzz_seeds -- crates/bbolt/fuzz/corpus/open`.
//! Small pages keep inputs short, so mutations hit structure often.

use bbolt::build::{Options, Tree, image};

fn main() {
    let dir = std::env::args().nth(1).expect("usage: fuzz_seeds DIR");
    std::fs::create_dir_all(&dir).unwrap();
    let mut seeds = Vec::new();

    let mut t = Tree::new();
    t.bucket("a").put("k", "v").put("e", "");
    t.bucket("empty");
    seeds.push(("inline", t, 1024));

    let mut t = Tree::new();
    let b = t.bucket("b").set_sequence(42);
    for i in 0..120u32 {
        b.put(format!("k{i:03}"), format!("value {i}"));
    }
    b.bucket("nested").put("x", "y");
    seeds.push(("branch", t, 1024));

    let mut t = Tree::new();
    t.bucket("big").put("v", vec![7u8; 3000]).put("w", "small");
    t.bucket("paged").bucket("deeper").put("z", vec![1u8; 400]);
    seeds.push(("overflow", t, 1024));

    for (name, tree, ps) in seeds {
        let img = image(
            &tree,
            &Options {
                page_size: ps,
                txid: 3,
                first_page: 3,
            },
        )
        .unwrap();
        std::fs::write(format!("{dir}/gen-{name}"), img).unwrap();
    }
}
