//! The reachability core, store-agnostic: typed nodes, a refs function that
//! each source supplies, and a mark over them. The shape is containerd's
//! garbage collector (containerd `pkg/gc/gc.go` `Tricolor`, `core/metadata/gc.go`
//! `references`): a store only says what each node refers to; what is live
//! follows from the roots.
//!
//! Nodes are dense indices into the source's own tables, so a mark is a walk
//! over small integers with one reusable stamp array per kind: marking from
//! ten thousand roots one after another allocates nothing per root.

use serde::Serialize;

/// What a node is. Each source numbers its nodes of a kind from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Image,
    /// A read-only layer (by chain ID).
    Layer,
    /// A RW layer: a graphdriver's `layerdb/mounts` entry.
    Mount,
    /// A directory holding layer data (a graphdriver dir).
    Dir,
    // containerd's resources (`core/metadata/gc.go` `Resource*`), each keyed
    // per namespace; an image of a containerd store is a `Kind::Image`.
    /// A blob record (`content/blob/<digest>` in one namespace).
    Blob,
    /// A snapshot record (`snapshots/<snapshotter>/<key>` in one namespace).
    Snapshot,
    /// A lease.
    Lease,
    /// An ingest record (`content/ingests/<ref>`).
    Ingest,
    /// A container record.
    Container,
    /// A sandbox record (2.0+ `v1/<ns>/sandboxes`).
    Sandbox,
    /// A blob, image or snapshot held by a flat lease: kept, but its
    /// references are not followed (`resourceContentFlat` and friends), except
    /// a flat snapshot's parent. Same keys as `Blob`, `Image`, `Snapshot`.
    BlobFlat,
    ImageFlat,
    SnapshotFlat,
}

impl Kind {
    /// How many kinds there are.
    pub const COUNT: usize = 13;

    pub const ALL: [Kind; Kind::COUNT] = [
        Kind::Image,
        Kind::Layer,
        Kind::Mount,
        Kind::Dir,
        Kind::Blob,
        Kind::Snapshot,
        Kind::Lease,
        Kind::Ingest,
        Kind::Container,
        Kind::Sandbox,
        Kind::BlobFlat,
        Kind::ImageFlat,
        Kind::SnapshotFlat,
    ];

    pub fn index(self) -> usize {
        self as usize
    }
}

/// A node of a store's reference graph: its kind and its key (an index into
/// the source's table of that kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Node {
    pub kind: Kind,
    pub key: u32,
}

impl Node {
    pub fn new(kind: Kind, key: u32) -> Node {
        Node { kind, key }
    }
}

/// A source's edges: what a node refers to, and how many nodes of each kind exist.
pub trait Refs {
    fn count(&self, kind: Kind) -> usize;
    /// Appends every node `n` refers to (its parent layer, its data dir, ...).
    fn refs(&self, n: Node, out: &mut Vec<Node>);
}

/// A reusable marker: one stamp per node, a new generation per mark.
pub struct Marker {
    stamps: [Vec<u32>; Kind::COUNT],
    generation: u32,
    stack: Vec<Node>,
    out: Vec<Node>,
}

impl Marker {
    pub fn new(refs: &dyn Refs) -> Marker {
        Marker {
            stamps: Kind::ALL.map(|k| vec![0; refs.count(k)]),
            generation: 0,
            stack: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Calls `visit` once for every node reachable from `roots` (roots
    /// included), in no particular order. Cycles in damaged metadata end the
    /// walk instead of hanging it: every node is entered once per mark.
    pub fn mark(
        &mut self,
        refs: &dyn Refs,
        roots: impl IntoIterator<Item = Node>,
        mut visit: impl FnMut(Node),
    ) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            // Wrapped: old stamps could collide with the new generation.
            for s in &mut self.stamps {
                s.fill(0);
            }
            self.generation = 1;
        }
        let g = self.generation;
        // One root at a time: the stack then holds one walk, not every root
        // of ten thousand holders at once.
        for root in roots {
            self.stack.clear();
            self.stack.push(root);
            while let Some(n) = self.stack.pop() {
                let Some(stamp) = self.stamps[n.kind.index()].get_mut(n.key as usize) else {
                    continue; // a key the source does not have: nothing to reach
                };
                if *stamp == g {
                    continue;
                }
                *stamp = g;
                visit(n);
                self.out.clear();
                refs.refs(n, &mut self.out);
                // Only unmarked nodes go on the stack: a chain's every layer
                // is already on it from the image.
                let stamps = &self.stamps;
                self.stack.extend(self.out.drain(..).filter(|m| {
                    stamps[m.kind.index()]
                        .get(m.key as usize)
                        .is_some_and(|s| *s != g)
                }));
            }
        }
    }
}

/// Every node reachable from `roots`, sorted.
pub fn reachable(refs: &dyn Refs, roots: impl IntoIterator<Item = Node>) -> Vec<Node> {
    let mut out = Vec::new();
    Marker::new(refs).mark(refs, roots, |n| out.push(n));
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Layers 0 → 1 → 2 → 0 (a cycle), layer 3 alone; every layer → dir of the same key.
    struct Ring;
    impl Refs for Ring {
        fn count(&self, kind: Kind) -> usize {
            match kind {
                Kind::Layer | Kind::Dir => 4,
                _ => 0,
            }
        }
        fn refs(&self, n: Node, out: &mut Vec<Node>) {
            if n.kind == Kind::Layer {
                out.push(Node::new(Kind::Dir, n.key));
                if n.key < 3 {
                    out.push(Node::new(Kind::Layer, (n.key + 1) % 3));
                }
            }
        }
    }

    #[test]
    fn mark_follows_refs_and_ends_at_cycles() {
        let r = reachable(&Ring, [Node::new(Kind::Layer, 1)]);
        assert_eq!(r.len(), 6, "three layers and their dirs: {r:?}");
        let r = reachable(&Ring, [Node::new(Kind::Layer, 3)]);
        assert_eq!(r, vec![Node::new(Kind::Layer, 3), Node::new(Kind::Dir, 3)]);
        assert!(reachable(&Ring, []).is_empty());
        // Roots that overlap: each node once, whichever root reached it first.
        let r = reachable(&Ring, [2, 3, 0].map(|k| Node::new(Kind::Layer, k)));
        assert_eq!(r.len(), 8, "four layers and their dirs: {r:?}");
        // A key past the table is ignored, not a panic.
        assert!(reachable(&Ring, [Node::new(Kind::Image, 0)]).is_empty());
    }

    #[test]
    fn a_marker_is_reusable_across_roots() {
        let mut m = Marker::new(&Ring);
        let mut a = 0;
        m.mark(&Ring, [Node::new(Kind::Layer, 0)], |_| a += 1);
        let mut b = 0;
        m.mark(&Ring, [Node::new(Kind::Layer, 0)], |_| b += 1);
        assert_eq!((a, b), (6, 6), "each mark starts fresh");
    }
}
