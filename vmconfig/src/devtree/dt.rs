//! Allocation-free helpers over the `fdt` crate for boot-time discovery: property
//! decoding that never panics, `reg` decoding with the parent's cell sizes, bus address
//! translation through `ranges`, and a depth-first walk that hands each node to a visitor
//! together with its ancestors.
//!
//! Only call these on blobs accepted by [`super::check::check`].

use fdt::node::FdtNode;
use fdt::Fdt;

/// Deepest node the walk descends to (root = depth 0).
pub const WALK_DEPTH: usize = 12;

pub type Node<'b, 'a> = FdtNode<'b, 'a>;

pub fn prop<'a>(node: Node<'_, 'a>, name: &str) -> Option<&'a [u8]> {
    node.properties().find(|p| p.name == name).map(|p| p.value)
}

pub fn be32_at(b: &[u8], index: usize) -> Option<u32> {
    let at = index.checked_mul(4)?;
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

pub fn prop_u32(node: Node<'_, '_>, name: &str) -> Option<u32> {
    be32_at(prop(node, name)?, 0)
}

/// A property holding one 32- or 64-bit number.
pub fn prop_u64(node: Node<'_, '_>, name: &str) -> Option<u64> {
    let v = prop(node, name)?;
    match v.len() {
        4 => be32_at(v, 0).map(u64::from),
        8 => read_cells(v, 2),
        _ => None,
    }
}

/// The first string of a string property.
pub fn prop_str<'a>(node: Node<'_, 'a>, name: &str) -> Option<&'a str> {
    let v = prop(node, name)?;
    let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
    core::str::from_utf8(&v[..end]).ok()
}

/// Every string of a string-list property.
pub fn strings(v: &[u8]) -> impl Iterator<Item = &str> {
    v.split(|&c| c == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| core::str::from_utf8(s).ok())
}

pub fn compatible_with(node: Node<'_, '_>, any_of: &[&str]) -> bool {
    prop(node, "compatible").is_some_and(|v| strings(v).any(|c| any_of.contains(&c)))
}

/// `status` absent, "okay" or "ok".
pub fn is_enabled(node: Node<'_, '_>) -> bool {
    matches!(prop_str(node, "status"), None | Some("okay") | Some("ok"))
}

/// The node name without its unit address.
pub fn base_name<'a>(node: Node<'_, 'a>) -> &'a str {
    node.name.split('@').next().unwrap_or("")
}

/// `#address-cells` / `#size-cells` a node gives its children (defaults 2 and 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cells {
    pub addr: usize,
    pub size: usize,
}

pub fn child_cells(node: Node<'_, '_>) -> Cells {
    let get = |name, default| prop_u32(node, name).map_or(default, |v| v as usize);
    Cells {
        addr: get("#address-cells", 2),
        size: get("#size-cells", 1),
    }
}

/// Reads a big-endian number of `n` cells (0, 1 or 2) from the start of `b`.
pub fn read_cells(b: &[u8], n: usize) -> Option<u64> {
    match n {
        0 => Some(0),
        1 => be32_at(b, 0).map(u64::from),
        2 => Some((u64::from(be32_at(b, 0)?) << 32) | u64::from(be32_at(b, 1)?)),
        _ => None,
    }
}

/// Decodes `(address, size)` pairs of a `reg`-like value with the given cell sizes.
/// Stops at the first entry that does not fit in 64 bits.
pub fn pairs(value: &[u8], cells: Cells) -> impl Iterator<Item = (u64, u64)> + '_ {
    let stride = (cells.addr + cells.size) * 4;
    let usable = cells.addr <= 2 && cells.size <= 2 && stride > 0;
    let count = if usable { value.len() / stride } else { 0 };
    (0..count).map_while(move |i| {
        let entry = &value[i * stride..(i + 1) * stride];
        let addr = read_cells(entry, cells.addr)?;
        let size = read_cells(&entry[cells.addr * 4..], cells.size)?;
        Some((addr, size))
    })
}

/// Translates a bus address of a child of `path[level]` up to the root's address space
/// through the `ranges` of every ancestor bus. `path[0]` is the root. `None` when no
/// range matches or the cells are too wide; a missing or empty `ranges` is identity.
pub fn translate(path: &[Node<'_, '_>], mut addr: u64) -> Option<u64> {
    for level in (1..path.len()).rev() {
        let bus = path[level];
        let Some(ranges) = prop(bus, "ranges") else {
            continue;
        };
        if ranges.is_empty() {
            continue;
        }
        addr = translate_one(
            ranges,
            child_cells(bus),
            child_cells(path[level - 1]).addr,
            addr,
        )?;
    }
    Some(addr)
}

fn translate_one(ranges: &[u8], child: Cells, parent_addr_cells: usize, addr: u64) -> Option<u64> {
    let (ca, pa, sz) = (child.addr, parent_addr_cells, child.size);
    if ca > 2 || pa > 2 || sz > 2 {
        return None;
    }
    let stride = (ca + pa + sz) * 4;
    for entry in ranges.chunks_exact(stride) {
        let child_base = read_cells(entry, ca)?;
        let parent_base = read_cells(&entry[ca * 4..], pa)?;
        let size = read_cells(&entry[(ca + pa) * 4..], sz)?;
        if addr >= child_base && addr - child_base < size {
            return parent_base.checked_add(addr - child_base);
        }
    }
    None
}

/// The `reg` entries of `path.last()`, translated to CPU physical addresses.
/// Entries that cannot be translated or overflow are left out.
pub fn regs<'p>(path: &'p [Node<'_, '_>]) -> impl Iterator<Item = (u64, u64)> + 'p {
    let (node, parent) = match path {
        [.., parent, node] => (Some(*node), Some(*parent)),
        _ => (None, None),
    };
    let value = node.and_then(|n| prop(n, "reg")).unwrap_or(&[]);
    let cells = parent.map_or(Cells { addr: 2, size: 1 }, child_cells);
    let bus = &path[..path.len().saturating_sub(1)];
    pairs(value, cells).filter_map(move |(addr, size)| {
        let addr = translate(bus, addr)?;
        addr.checked_add(size)?;
        Some((addr, size))
    })
}

/// The root node.
pub fn root<'b, 'a>(fdt: &'b Fdt<'a>) -> Option<Node<'b, 'a>> {
    fdt.all_nodes().next()
}

/// A child of `node` whose name is `name`, or whose base name is `name` when `name`
/// carries no unit address.
pub fn child<'b, 'a>(node: Node<'b, 'a>, name: &str) -> Option<Node<'b, 'a>> {
    node.children().find(|c| is_named(c.name, name))
}

/// Whether a node called `node_name` is `name`: the same, or `name` carries no unit
/// address and is the node's base name.
fn is_named(node_name: &str, name: &str) -> bool {
    node_name == name || (!name.contains('@') && node_name.split('@').next() == Some(name))
}

/// Depth-first walk over every node up to [`WALK_DEPTH`]; `visit` gets the path from
/// the root to the node (the node last).
pub fn walk<'b, 'a>(fdt: &'b Fdt<'a>, visit: &mut dyn FnMut(&[Node<'b, 'a>])) {
    let Some(root) = root(fdt) else { return };
    let mut path = [root; WALK_DEPTH + 1];
    walk_from(&mut path, 0, visit);
}

fn walk_from<'b, 'a>(
    path: &mut [Node<'b, 'a>; WALK_DEPTH + 1],
    depth: usize,
    visit: &mut dyn FnMut(&[Node<'b, 'a>]),
) {
    visit(&path[..=depth]);
    if depth == WALK_DEPTH {
        return;
    }
    for c in path[depth].children() {
        path[depth + 1] = c;
        walk_from(path, depth + 1, visit);
    }
}

/// A path like `/soc/serial@1000`, split in two pieces so an alias can be expanded
/// without allocating: `head` (alias value or the path) followed by `tail`.
#[derive(Clone, Copy, Debug)]
pub struct NodePath<'a> {
    pub head: &'a str,
    pub tail: &'a str,
}

impl<'a> NodePath<'a> {
    fn components(self) -> impl Iterator<Item = &'a str> {
        self.head
            .split('/')
            .chain(self.tail.split('/'))
            .filter(|c| !c.is_empty())
    }

    /// Whether `path` (root first) names the node this path points to.
    pub fn matches(self, path: &[Node<'_, '_>]) -> bool {
        let mut want = self.components();
        for node in path.iter().skip(1) {
            let Some(c) = want.next() else { return false };
            if !is_named(node.name, c) {
                return false;
            }
        }
        want.next().is_none()
    }
}

/// Resolves a `stdout-path`-style value: options after ':' are cut, and a leading alias
/// (`serial2` or `serial2/child`) is expanded through `/aliases`.
pub fn resolve_path<'a>(aliases: Option<Node<'_, 'a>>, spec: &'a str) -> Option<NodePath<'a>> {
    let spec = spec.split(':').next().unwrap_or("");
    if spec.starts_with('/') {
        return Some(NodePath {
            head: spec,
            tail: "",
        });
    }
    let (alias, tail) = spec.split_once('/').unwrap_or((spec, ""));
    let head = prop_str(aliases?, alias)?;
    head.starts_with('/').then_some(NodePath { head, tail })
}
