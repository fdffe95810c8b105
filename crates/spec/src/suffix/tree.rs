//! A depth-capped suffix trie over several token sequences.
//!
//! Every substring of a live sequence of at most `max_depth` tokens is a
//! node; its count is the number of places it occurs. Appending a token
//! touches only the `max_depth` suffixes ending at it, which each sequence
//! keeps as a window of node ids, so an append costs O(max_depth) child
//! lookups and allocates only when the trie grows.

use std::collections::HashMap;

use super::SuffixError;
use crate::Token;

/// Identifies one sequence inside a tree.
pub type SeqId = u64;

/// Deepest trie the tree accepts; deeper tries only cost memory, since
/// drafts are capped at [`crate::MAX_DRAFT`] anyway.
pub const MAX_TREE_DEPTH: usize = 1024;

pub(crate) type NodeId = u32;

/// Index of the root. The root's children live in a hash map because its
/// fan-out is the whole vocabulary seen.
pub(crate) const ROOT: NodeId = 0;

/// A node found in the tree and its occurrence count.
pub(crate) type Hit = (NodeId, u32);

/// A link to a child, carrying the child's occurrence count so that
/// counting and choosing among children never touches the children
/// themselves (one cache miss less per level).
#[derive(Clone, Copy, Debug)]
struct Edge {
    token: Token,
    node: NodeId,
    count: u32,
}

/// Children of a non-root node. Below the root fan-out is small, so a
/// sorted Vec beats a map on memory and on scans for the most frequent
/// child; and most deep nodes have a single child, which is kept inline to
/// save an allocation and a cache miss per level.
#[derive(Clone, Debug, Default)]
struct Node {
    /// The child when it is the only one and `more` is empty.
    only: Option<Edge>,
    /// Children sorted by token, once there have been several.
    more: Vec<Edge>,
}

impl Node {
    /// Children sorted by token.
    fn edges(&self) -> &[Edge] {
        match &self.only {
            Some(e) => std::slice::from_ref(e),
            None => &self.more,
        }
    }

    fn edge_mut(&mut self, t: Token) -> Option<&mut Edge> {
        if let Some(e) = &mut self.only {
            return (e.token == t).then_some(e);
        }
        let i = find_edge(&self.more, t).ok()?;
        self.more.get_mut(i)
    }

    /// Adds a child whose token is not yet present.
    fn link(&mut self, edge: Edge) {
        if self.more.is_empty() {
            match self.only.take() {
                Some(first) => self.more.push(first),
                None => {
                    self.only = Some(edge);
                    return;
                }
            }
        }
        let at = self.more.partition_point(|e| e.token < edge.token);
        self.more.insert(at, edge);
    }

    fn unlink(&mut self, t: Token) {
        if self.only.is_some_and(|e| e.token == t) {
            self.only = None;
        } else if let Ok(i) = find_edge(&self.more, t) {
            self.more.remove(i);
        }
    }

    /// Drops all children, keeping the buffer for the node's next life.
    fn clear(&mut self) {
        self.only = None;
        self.more.clear();
    }
}

/// Node storage with recycling, so steady-state churn (append, evict)
/// reuses freed nodes and their child buffers.
#[derive(Clone, Debug)]
struct Arena {
    nodes: Vec<Node>,
    free: Vec<NodeId>,
    /// Children of the root as `token -> (node, count)`.
    root_children: HashMap<Token, (NodeId, u32)>,
}

fn find_edge(kids: &[Edge], t: Token) -> Result<usize, usize> {
    kids.binary_search_by_key(&t, |e| e.token)
}

impl Arena {
    fn new() -> Self {
        Self { nodes: vec![Node::default()], free: Vec::new(), root_children: HashMap::new() }
    }

    /// The child of `parent` labelled `t` and its count.
    fn child(&self, parent: NodeId, t: Token) -> Option<(NodeId, u32)> {
        if parent == ROOT {
            return self.root_children.get(&t).copied();
        }
        let kids = self.nodes.get(parent as usize)?.edges();
        let e = kids.get(find_edge(kids, t).ok()?)?;
        Some((e.node, e.count))
    }

    fn alloc(&mut self) -> NodeId {
        if let Some(id) = self.free.pop() {
            return id;
        }
        self.nodes.push(Node::default());
        (self.nodes.len() - 1) as NodeId
    }

    /// Whether `n` more nodes fit in the id space.
    fn has_room(&self, n: usize) -> bool {
        let fresh = n.saturating_sub(self.free.len());
        self.nodes.len().saturating_add(fresh) < NodeId::MAX as usize
    }

    /// Increments the child of `parent` labelled `t`, creating it if needed.
    fn bump_child(&mut self, parent: NodeId, t: Token) -> NodeId {
        if parent == ROOT {
            if let Some((id, count)) = self.root_children.get_mut(&t) {
                *count = count.saturating_add(1);
                return *id;
            }
            let id = self.alloc();
            self.root_children.insert(t, (id, 1));
            return id;
        }
        let Some(p) = self.nodes.get_mut(parent as usize) else {
            return ROOT;
        };
        if let Some(e) = p.edge_mut(t) {
            e.count = e.count.saturating_add(1);
            return e.node;
        }
        let node = self.alloc();
        if let Some(p) = self.nodes.get_mut(parent as usize) {
            p.link(Edge { token: t, node, count: 1 });
        }
        node
    }

    /// Decrements child `t` of `parent`, unlinking and recycling it at
    /// zero. Callers go deepest first, so a freed node has no children.
    fn drop_one(&mut self, parent: NodeId, t: Token) {
        let freed = if parent == ROOT {
            self.drop_root_child(t)
        } else {
            self.nodes.get_mut(parent as usize).and_then(|p| {
                let e = p.edge_mut(t)?;
                e.count = e.count.saturating_sub(1);
                let freed = (e.count == 0).then_some(e.node);
                if freed.is_some() {
                    p.unlink(t);
                }
                freed
            })
        };
        if let Some(id) = freed {
            if let Some(n) = self.nodes.get_mut(id as usize) {
                n.clear();
            }
            self.free.push(id);
        }
    }

    fn drop_root_child(&mut self, t: Token) -> Option<NodeId> {
        let (id, count) = self.root_children.get_mut(&t)?;
        *count = count.saturating_sub(1);
        let (id, gone) = (*id, *count == 0);
        if gone {
            self.root_children.remove(&t);
        }
        gone.then_some(id)
    }
}

#[derive(Clone, Debug, Default)]
struct SeqState {
    tokens: Vec<Token>,
    /// `window[i]` is the node of the suffix of length `i + 1` ending at the
    /// last token.
    window: Vec<NodeId>,
}

/// Depth-capped suffix trie; see the module docs.
#[derive(Clone, Debug)]
pub struct SuffixTree {
    max_depth: usize,
    arena: Arena,
    seqs: HashMap<SeqId, SeqState>,
    /// Tokens across all sequences: the root's count.
    tokens: usize,
    /// Reused by removals: `(parent, token)` along the path decremented.
    path: Vec<(NodeId, Token)>,
}

impl SuffixTree {
    /// `max_depth` is clamped to `1..=MAX_TREE_DEPTH`.
    pub fn new(max_depth: usize) -> Self {
        Self {
            max_depth: max_depth.clamp(1, MAX_TREE_DEPTH),
            arena: Arena::new(),
            seqs: HashMap::new(),
            tokens: 0,
            path: Vec::new(),
        }
    }

    pub fn max_depth(&self) -> usize {
        self.max_depth
    }

    /// Live nodes, not counting the root.
    pub fn node_count(&self) -> usize {
        self.arena.nodes.len() - 1 - self.arena.free.len()
    }

    /// Tokens held across all sequences.
    pub fn token_count(&self) -> usize {
        self.tokens
    }

    pub fn sequence(&self, seq: SeqId) -> Option<&[Token]> {
        self.seqs.get(&seq).map(|s| s.tokens.as_slice())
    }

    pub fn sequence_count(&self) -> usize {
        self.seqs.len()
    }

    /// Extends sequence `seq` (created on first use) by `t`. Fails only if
    /// the node id space is exhausted, leaving the tree unchanged.
    pub fn append(&mut self, seq: SeqId, t: Token) -> Result<(), SuffixError> {
        if !self.arena.has_room(self.max_depth) {
            return Err(SuffixError::TreeFull);
        }
        let st = self.seqs.entry(seq).or_default();
        let new_len = (st.window.len() + 1).min(self.max_depth);
        if st.window.len() < new_len {
            st.window.push(ROOT);
        }
        // Downwards, so each old entry is read before it is overwritten.
        for i in (1..new_len).rev() {
            st.window[i] = self.arena.bump_child(st.window[i - 1], t);
        }
        st.window[0] = self.arena.bump_child(ROOT, t);
        st.tokens.push(t);
        self.tokens += 1;
        Ok(())
    }

    /// Appends every token of `tokens` to `seq`.
    pub fn extend(&mut self, seq: SeqId, tokens: &[Token]) -> Result<(), SuffixError> {
        tokens.iter().try_for_each(|&t| self.append(seq, t))
    }

    /// Removes a sequence, decrementing every suffix it contributed and
    /// recycling nodes that no longer occur. Returns its tokens.
    pub fn remove_sequence(&mut self, seq: SeqId) -> Option<Vec<Token>> {
        let st = self.seqs.remove(&seq)?;
        for start in 0..st.tokens.len() {
            let end = (start + self.max_depth).min(st.tokens.len());
            self.remove_path(&st.tokens[start..end]);
        }
        self.tokens = self.tokens.saturating_sub(st.tokens.len());
        Some(st.tokens)
    }

    /// Decrements the nodes along `path` from the root, deepest first.
    fn remove_path(&mut self, path: &[Token]) {
        self.path.clear();
        let mut node = ROOT;
        for &t in path {
            let Some((c, _)) = self.arena.child(node, t) else {
                break;
            };
            self.path.push((node, t));
            node = c;
        }
        while let Some((parent, t)) = self.path.pop() {
            self.arena.drop_one(parent, t);
        }
    }

    /// Forgets everything, keeping the arena's capacity.
    pub fn clear(&mut self) {
        self.arena.nodes.truncate(1);
        if let Some(root) = self.arena.nodes.first_mut() {
            *root = Node::default();
        }
        self.arena.free.clear();
        self.arena.root_children.clear();
        self.seqs.clear();
        self.tokens = 0;
    }

    /// The node of `pattern` and its count, if it occurs (the root and
    /// the token count for an empty pattern).
    pub(crate) fn find(&self, pattern: &[Token]) -> Option<Hit> {
        if pattern.len() > self.max_depth {
            return None;
        }
        let root = (ROOT, u32::try_from(self.tokens).unwrap_or(u32::MAX));
        pattern.iter().try_fold(root, |(node, _), &t| self.arena.child(node, t))
    }

    /// Occurrences of `pattern` across live sequences (0 if longer than
    /// the depth cap); the empty pattern counts every token.
    pub fn count(&self, pattern: &[Token]) -> u32 {
        self.find(pattern).map_or(0, |(_, c)| c)
    }

    /// Calls `f(token, child)` for each child of `node`. Order is by token
    /// except below the root, which queries never expand.
    pub(crate) fn for_each_child(&self, node: NodeId, mut f: impl FnMut(Token, Hit)) {
        if node == ROOT {
            self.arena.root_children.iter().for_each(|(&t, &c)| f(t, c));
        } else if let Some(n) = self.arena.nodes.get(node as usize) {
            n.edges().iter().for_each(|e| f(e.token, (e.node, e.count)));
        }
    }

    /// Most frequent child of `node`, ties to the smallest token.
    pub(crate) fn best_child(&self, node: NodeId) -> Option<(Token, Hit)> {
        let kids = self.arena.nodes.get(node as usize)?.edges();
        let mut best: Option<&Edge> = None;
        for e in kids {
            if best.is_none_or(|b| e.count > b.count) {
                best = Some(e);
            }
        }
        best.map(|e| (e.token, (e.node, e.count)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_substrings_within_cap() {
        let mut t = SuffixTree::new(3);
        t.extend(1, &[1, 2, 1, 2, 1]).unwrap();
        assert_eq!(t.count(&[]), 5);
        assert_eq!(t.count(&[1]), 3);
        assert_eq!(t.count(&[1, 2]), 2);
        assert_eq!(t.count(&[1, 2, 1]), 2);
        assert_eq!(t.count(&[1, 2, 1, 2]), 0);
        assert_eq!(t.count(&[2, 2]), 0);
        // Distinct substrings of length <= 3: 1, 2, 12, 21, 121, 212.
        assert_eq!(t.node_count(), 6);
    }

    #[test]
    fn removal_frees_and_recycles() {
        let mut t = SuffixTree::new(4);
        t.extend(1, &[5, 6, 7]).unwrap();
        t.extend(2, &[5, 6, 8]).unwrap();
        assert_eq!(t.count(&[5, 6]), 2);
        assert_eq!(t.remove_sequence(1), Some(vec![5, 6, 7]));
        assert_eq!(t.count(&[5, 6]), 1);
        assert_eq!(t.count(&[7]), 0);
        assert_eq!(t.node_count(), 6);
        assert_eq!(t.remove_sequence(1), None);
        t.remove_sequence(2);
        assert_eq!((t.node_count(), t.token_count()), (0, 0));
        let cap = t.arena.nodes.len();
        t.extend(3, &[9, 9, 9]).unwrap();
        assert_eq!(t.arena.nodes.len(), cap, "freed nodes are reused");
    }

    #[test]
    fn depth_is_clamped() {
        assert_eq!(SuffixTree::new(0).max_depth(), 1);
        assert_eq!(SuffixTree::new(usize::MAX).max_depth(), MAX_TREE_DEPTH);
    }
}
