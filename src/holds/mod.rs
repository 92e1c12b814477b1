//! Who holds what: the one answer to "is this layer (dir, blob) still in use,
//! and by whom". df (shared, exclusive, reclaimable, build cache, orphans),
//! the prune plan (what goes with the chosen images), the watermark policy
//! and verify (unreferenced data, impact of damage) all ask these holds;
//! none of them walks parent chains or rebuilds a "pinned" set of its own.
//!
//! A holder is a root of the reference graph with a reason: an image, a
//! container's RW layer, BuildKit, a leftover that still holds what is below
//! it (a layer nothing uses keeps its parents, as the daemon's reference
//! counts do), or something dockgc cannot resolve (an unreadable reference).
//! Each holder holds every node reachable from its roots ([`crate::reach`]).
//!
//! "What would removing these holders free" is the question every consumer
//! asks: a node is freed when every holder that reaches it is removed.
//! Where consumers differ on purpose, they differ in which holders they
//! remove, never in how holds are counted.

pub mod containerd;
pub mod graphdriver;

use crate::ids::{ChainId, ContainerId, ImageId};
use crate::reach::{Kind, Marker, Node, Refs};
use serde::Serialize;
use std::cell::RefCell;
use std::path::PathBuf;

thread_local! {
    /// [`Holds::freed`]'s count per node, all zero between calls.
    static FREED_COUNTS: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// Why something is held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Holder {
    /// An image config on disk (loaded or not: an image the daemon skips may
    /// be repairable, and its data is not ours to take).
    Image { id: ImageId },
    /// A RW layer (`layerdb/mounts/<name>`), with the container that owns it,
    /// if any. One nobody owns is a leftover that still holds its parent chain.
    Mount {
        name: String,
        container: Option<ContainerId>,
    },
    /// BuildKit's records.
    Buildkit { what: String },
    /// A layer no image, container or BuildKit uses: it still holds its
    /// parents, as the daemon's reference counts do.
    LeftoverLayer { chain_id: ChainId },
    /// An interrupted deletion (`-removing`) or an entry the daemon cannot
    /// load: it still claims its driver dir.
    LeftoverEntry { path: PathBuf },
    /// dockgc cannot tell: an unreadable reference might own it, or it is not
    /// something the daemon makes. Never removed.
    Unknown { why: String },
    /// A holder a caller adds (tests, extensions): proves that one new
    /// holder changes every consumer at once.
    Extra { why: String },
    /// A root of containerd's garbage collector (a containerd store).
    Containerd(containerd::CtrdHolder),
}

impl Holder {
    /// Holders that go away with `--orphans` (or never exist on a tidy root).
    pub fn is_leftover(&self) -> bool {
        matches!(
            self,
            Holder::LeftoverLayer { .. }
                | Holder::LeftoverEntry { .. }
                | Holder::Mount {
                    container: None,
                    ..
                }
        )
    }

    /// A person's words for it, for reasons in reports and plans.
    pub fn describe(&self) -> String {
        match self {
            Holder::Image { id } => format!("image {}", id.short()),
            Holder::Mount {
                container: Some(c), ..
            } => format!("container {}", c.short()),
            Holder::Mount { name, .. } => format!("RW layer {name} (no container)"),
            Holder::Buildkit { what } => format!("BuildKit ({what})"),
            Holder::LeftoverLayer { chain_id } => format!("leftover layer {}", chain_id.short()),
            Holder::LeftoverEntry { path } => format!("leftover {}", path.display()),
            Holder::Unknown { why } => format!("unknown ({why})"),
            Holder::Extra { why } => why.clone(),
            Holder::Containerd(h) => h.describe(),
        }
    }
}

/// Index of a holder in [`Holds::holders`].
pub type HolderId = u32;

/// A holder and the nodes it holds directly; it holds everything those reach.
#[derive(Clone, Debug)]
pub struct Hold {
    pub holder: Holder,
    pub roots: Vec<Node>,
}

/// The holds of one snapshot: for every holder the nodes it reaches, and for
/// every node the holders that reach it.
#[derive(Debug, Default)]
pub struct Holds {
    holders: Vec<Holder>,
    /// Nodes each holder reaches: `reach[reach_at[h]..reach_at[h + 1]]`.
    reach: Vec<Node>,
    reach_at: Vec<u32>,
    /// Holders of each node, per kind: `by_node[k][by_node_at[k][n]..]`.
    by_node: [Vec<HolderId>; Kind::COUNT],
    by_node_at: [Vec<u32>; Kind::COUNT],
}

impl Holds {
    /// Marks from every holder's roots over `refs`.
    pub fn compute(refs: &dyn Refs, holds: Vec<Hold>) -> Holds {
        let mut marker = Marker::new(refs);
        let mut reach = Vec::new();
        let mut reach_at = Vec::with_capacity(holds.len() + 1);
        let mut counts: [Vec<u32>; Kind::COUNT] = Kind::ALL.map(|k| vec![0; refs.count(k)]);
        let mut holders = Vec::with_capacity(holds.len());
        for h in holds {
            reach_at.push(reach.len() as u32);
            marker.mark(refs, h.roots, |n| {
                counts[n.kind.index()][n.key as usize] += 1;
                reach.push(n);
            });
            holders.push(h.holder);
        }
        reach_at.push(reach.len() as u32);
        // Inverse lists: prefix sums of the counts, then one fill pass.
        let by_node_at: [Vec<u32>; Kind::COUNT] = counts.map(|c| {
            let mut at = Vec::with_capacity(c.len() + 1);
            let mut sum = 0u32;
            at.push(0);
            for n in c {
                sum += n;
                at.push(sum);
            }
            at
        });
        let mut fill: [Vec<u32>; Kind::COUNT] = by_node_at.clone().map(|mut v| {
            v.pop();
            v
        });
        let mut by_node: [Vec<HolderId>; Kind::COUNT] = by_node_at
            .each_ref()
            .map(|at| vec![0; *at.last().unwrap_or(&0) as usize]);
        for h in 0..holders.len() {
            for n in &reach[reach_at[h] as usize..reach_at[h + 1] as usize] {
                let slot = &mut fill[n.kind.index()][n.key as usize];
                by_node[n.kind.index()][*slot as usize] = h as HolderId;
                *slot += 1;
            }
        }
        Holds {
            holders,
            reach,
            reach_at,
            by_node,
            by_node_at,
        }
    }

    pub fn holders(&self) -> &[Holder] {
        &self.holders
    }

    pub fn holder(&self, h: HolderId) -> &Holder {
        &self.holders[h as usize]
    }

    /// Every node `h` holds.
    pub fn reach(&self, h: HolderId) -> &[Node] {
        let h = h as usize;
        &self.reach[self.reach_at[h] as usize..self.reach_at[h + 1] as usize]
    }

    /// The holders of `n`.
    pub fn of(&self, n: Node) -> &[HolderId] {
        let at = &self.by_node_at[n.kind.index()];
        match (at.get(n.key as usize), at.get(n.key as usize + 1)) {
            (Some(a), Some(b)) => &self.by_node[n.kind.index()][*a as usize..*b as usize],
            _ => &[],
        }
    }

    pub fn is_held(&self, n: Node) -> bool {
        !self.of(n).is_empty()
    }

    /// Some holder of `n` satisfies `f`.
    pub fn held_by(&self, n: Node, f: impl Fn(&Holder) -> bool) -> bool {
        self.of(n).iter().any(|h| f(self.holder(*h)))
    }

    /// Every holder of `n` satisfies `f` (true for an unheld node).
    pub fn only_held_by(&self, n: Node, f: impl Fn(&Holder) -> bool) -> bool {
        self.of(n).iter().all(|h| f(self.holder(*h)))
    }

    /// The nodes that removing `removed` frees: those every holder of which
    /// is among them. Sorted.
    pub fn freed(&self, removed: impl IntoIterator<Item = HolderId>) -> Vec<Node> {
        // df asks this once per image (its EXCLUSIVE: the image and the
        // untagged parents removed with it), and deep parent chains reach
        // hundreds of thousands of nodes in all. A dense count per node,
        // kept per thread and cleared after use, costs no allocation per
        // call, where a map or list of the nodes reached cost megabytes.
        let mut removed: Vec<HolderId> = removed
            .into_iter()
            .filter(|h| (*h as usize) < self.holders.len())
            .collect();
        removed.sort_unstable();
        removed.dedup();
        let mut base = [0usize; Kind::COUNT];
        let mut total = 0;
        for (k, at) in self.by_node_at.iter().enumerate() {
            base[k] = total;
            total += at.len().saturating_sub(1);
        }
        let slot = |n: &Node| base[n.kind.index()] + n.key as usize;
        let count = |gone: &mut Vec<u32>| {
            gone.resize(gone.len().max(total), 0);
            let mut out = Vec::new();
            for h in &removed {
                for n in self.reach(*h) {
                    let g = &mut gone[slot(n)];
                    *g += 1;
                    if *g as usize == self.of(*n).len() {
                        out.push(*n);
                    }
                }
            }
            for h in &removed {
                for n in self.reach(*h) {
                    gone[slot(n)] = 0;
                }
            }
            out.sort();
            out
        };
        FREED_COUNTS.with(|c| match c.try_borrow_mut() {
            Ok(mut gone) => count(&mut gone),
            Err(_) => count(&mut Vec::new()),
        })
    }

    /// An incremental [`Holds::freed`]: remove holders one at a time and see
    /// what each frees (the watermark policy evicts until enough is freed).
    pub fn freer(&self) -> Freer<'_> {
        Freer {
            holds: self,
            gone: self
                .by_node_at
                .each_ref()
                .map(|at| vec![0; at.len().saturating_sub(1)]),
            removed: vec![false; self.holders.len()],
            freed: Vec::new(),
        }
    }
}

/// See [`Holds::freer`].
pub struct Freer<'h> {
    holds: &'h Holds,
    /// Removed holders of each node so far.
    gone: [Vec<u32>; Kind::COUNT],
    removed: Vec<bool>,
    /// Every node freed so far, in the order it was freed.
    pub freed: Vec<Node>,
}

impl Freer<'_> {
    /// Removes holder `h`; returns the nodes this frees (a suffix of `freed`).
    pub fn remove(&mut self, h: HolderId) -> &[Node] {
        let start = self.freed.len();
        match self.removed.get_mut(h as usize) {
            Some(r) if !*r => *r = true,
            _ => return &[], // unknown, or removed already
        }
        for n in self.holds.reach(h) {
            let g = &mut self.gone[n.kind.index()][n.key as usize];
            *g += 1;
            if *g as usize == self.holds.of(*n).len() {
                self.freed.push(*n);
            }
        }
        &self.freed[start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Layers 0 ← 1 ← 2 (parent links), dir k for layer k.
    struct Chain;
    impl Refs for Chain {
        fn count(&self, kind: Kind) -> usize {
            match kind {
                Kind::Layer | Kind::Dir => 3,
                _ => 0,
            }
        }
        fn refs(&self, n: Node, out: &mut Vec<Node>) {
            if n.kind == Kind::Layer {
                out.push(Node::new(Kind::Dir, n.key));
                if n.key > 0 {
                    out.push(Node::new(Kind::Layer, n.key - 1));
                }
            }
        }
    }

    fn layer(k: u32) -> Node {
        Node::new(Kind::Layer, k)
    }

    fn extra(why: &str, roots: Vec<Node>) -> Hold {
        Hold {
            holder: Holder::Extra { why: why.into() },
            roots,
        }
    }

    #[test]
    fn a_node_is_freed_only_when_all_its_holders_go() {
        let h = Holds::compute(
            &Chain,
            vec![extra("top", vec![layer(2)]), extra("mid", vec![layer(1)])],
        );
        assert_eq!(h.of(layer(0)), &[0, 1]);
        assert_eq!(h.of(layer(2)), &[0]);
        assert_eq!(h.freed([0]), vec![layer(2), Node::new(Kind::Dir, 2)]);
        assert_eq!(h.freed([0, 1]).len(), 6);
        assert_eq!(h.freed([0, 0, 1]).len(), 6, "duplicates count once");
        assert!(h.freed([]).is_empty());
        assert!(h.only_held_by(layer(2), |x| matches!(x, Holder::Extra { .. })));
    }

    #[test]
    fn the_freer_reports_what_each_removal_frees() {
        let h = Holds::compute(
            &Chain,
            vec![extra("a", vec![layer(1)]), extra("b", vec![layer(2)])],
        );
        let mut f = h.freer();
        assert_eq!(f.remove(0).len(), 0, "b still holds 0 and 1");
        assert_eq!(f.remove(1).len(), 6);
        assert_eq!(f.remove(1).len(), 0, "removing twice frees nothing more");
    }
}
