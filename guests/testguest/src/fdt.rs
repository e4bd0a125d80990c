//! A small reader of flattened device trees (DTB format version 17): nodes by path,
//! children, all nodes in order, properties, `reg` entries sized by the parent's
//! `#address-cells`/`#size-cells`, `compatible` lists.
//!
//! The guest reads the device tree the hypervisor under test generated, so this reader
//! copes with everything a valid blob may contain (NOP tokens left by in-place edits
//! included) and returns `None` on anything malformed instead of panicking. It reads
//! the blob in place and keeps nothing but offsets into it.

use crate::why::{why, Why};

const MAGIC: u32 = 0xd00d_feed;
const HEADER_SIZE: usize = 40;
/// Largest device tree accepted (the limit Linux uses too).
const MAX_SIZE: usize = 2 << 20;
/// Deepest node nesting followed.
const MAX_DEPTH: usize = 16;

const TOKEN_BEGIN_NODE: u32 = 1;
const TOKEN_END_NODE: u32 = 2;
const TOKEN_PROP: u32 = 3;
const TOKEN_NOP: u32 = 4;
const TOKEN_END: u32 = 9;

/// Cell counts a node gives its children when it has no `#address-cells` /
/// `#size-cells` (the devicetree specification's defaults).
const DEFAULT_CELLS: Cells = Cells {
    address: 2,
    size: 1,
};

/// `#address-cells` and `#size-cells` in effect for a node's `reg`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cells {
    pub address: u32,
    pub size: u32,
}

/// A device tree blob in memory.
#[derive(Clone, Copy)]
pub struct Fdt {
    blob: &'static [u8],
    structs: &'static [u8],
    strings: &'static [u8],
}

/// One node of the tree.
#[derive(Clone, Copy)]
pub struct Node {
    fdt: Fdt,
    /// Node name with unit address (empty for the root).
    pub name: &'static str,
    /// Offset in the structure block of the first token after the name.
    body: usize,
    /// Cell counts of this node's `reg` (given by its parent).
    parent_cells: Cells,
}

/// A token of the structure block and the offset of the token after it.
enum Token {
    BeginNode {
        name: &'static str,
    },
    EndNode,
    Prop {
        name_offset: usize,
        value: &'static [u8],
    },
    End,
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([word[0], word[1], word[2], word[3]]))
}

fn align4(offset: usize) -> Option<usize> {
    Some(offset.checked_add(3)? & !3)
}

/// The NUL-terminated string at the start of `bytes`.
fn c_str(bytes: &[u8]) -> Option<&str> {
    let len = bytes.iter().position(|&b| b == 0)?;
    core::str::from_utf8(&bytes[..len]).ok()
}

impl Fdt {
    /// The blob whose header is at `addr`.
    ///
    /// # Safety
    /// `addr` must be readable for the blob's header and, if the header is valid, for
    /// its `totalsize` bytes, and that memory must not change while the `Fdt` is used.
    pub unsafe fn from_addr(addr: usize) -> Result<Self, Why> {
        if addr == 0 || !addr.is_multiple_of(4) {
            return Err(why!("no device tree: boot register holds {addr:#x}"));
        }
        // SAFETY: the caller guarantees the header is readable.
        let header = unsafe { core::slice::from_raw_parts(addr as *const u8, HEADER_SIZE) };
        let magic = be32(header, 0).unwrap_or(0);
        if magic != MAGIC {
            return Err(why!("no device tree at {addr:#x} (magic {magic:#x})"));
        }
        let size = be32(header, 4).unwrap_or(0) as usize;
        if !(HEADER_SIZE..=MAX_SIZE).contains(&size) {
            return Err(why!("device tree at {addr:#x} has totalsize {size:#x}"));
        }
        // SAFETY: the caller guarantees `totalsize` bytes are readable and stay put.
        let blob = unsafe { core::slice::from_raw_parts(addr as *const u8, size) };
        Self::from_blob(blob).ok_or_else(|| why!("device tree at {addr:#x} has a bad header"))
    }

    /// A tree without nodes, for firmware that hands over no device tree (x86's
    /// Multiboot): every lookup finds nothing.
    pub const fn empty() -> Self {
        Self {
            blob: &[],
            structs: &[],
            strings: &[],
        }
    }

    fn from_blob(blob: &'static [u8]) -> Option<Self> {
        let section = |offset_at: usize, size_at: usize| -> Option<&'static [u8]> {
            let start = be32(blob, offset_at)? as usize;
            let len = be32(blob, size_at)? as usize;
            blob.get(start..start.checked_add(len)?)
        };
        let version = be32(blob, 20)?;
        let last_compatible = be32(blob, 24)?;
        if version < 17 || last_compatible > 17 {
            return None;
        }
        Some(Self {
            blob,
            structs: section(8, 36)?,
            strings: section(12, 32)?,
        })
    }

    /// Address and size of the blob.
    pub fn extent(&self) -> (usize, usize) {
        (self.blob.as_ptr() as usize, self.blob.len())
    }

    /// Reads the token at `at`; returns it and the offset of the next one.
    fn token(&self, mut at: usize) -> Option<(Token, usize)> {
        loop {
            let tag = be32(self.structs, at)?;
            let after = at + 4;
            return match tag {
                TOKEN_NOP => {
                    at = after;
                    continue;
                }
                TOKEN_BEGIN_NODE => {
                    let name = c_str(self.structs.get(after..)?)?;
                    let next = align4(after + name.len() + 1)?;
                    Some((Token::BeginNode { name }, next))
                }
                TOKEN_END_NODE => Some((Token::EndNode, after)),
                TOKEN_PROP => {
                    let len = be32(self.structs, after)? as usize;
                    let name_offset = be32(self.structs, after + 4)? as usize;
                    let start = after + 8;
                    let value = self.structs.get(start..start.checked_add(len)?)?;
                    Some((Token::Prop { name_offset, value }, align4(start + len)?))
                }
                TOKEN_END => Some((Token::End, after)),
                _ => None,
            };
        }
    }

    /// The root node.
    pub fn root(&self) -> Option<Node> {
        match self.token(0)? {
            (Token::BeginNode { name }, body) => Some(Node {
                fdt: *self,
                name,
                body,
                parent_cells: DEFAULT_CELLS,
            }),
            _ => None,
        }
    }

    /// The node at `path` (`/a/b@1`; a component without `@` also matches a node with a
    /// unit address), or, if `path` does not start with `/`, the node an alias names.
    pub fn find(&self, path: &str) -> Option<Node> {
        if !path.starts_with('/') {
            let target = self.find("/aliases")?.prop_str(path)?;
            return if target.starts_with('/') {
                self.find(target)
            } else {
                None
            };
        }
        let mut node = self.root()?;
        for component in path.split('/').filter(|c| !c.is_empty()) {
            node = node.children().find(|child| child.matches(component))?;
        }
        Some(node)
    }

    /// Every node, in the order of the blob.
    pub fn nodes(&self) -> Nodes {
        Nodes {
            fdt: *self,
            at: Some(0),
            depth: 0,
            cells: [DEFAULT_CELLS; MAX_DEPTH + 1],
        }
    }

    /// The first node compatible with one of `any`.
    pub fn find_compatible(&self, any: &[&str]) -> Option<Node> {
        self.nodes()
            .find(|node| any.iter().any(|want| node.is_compatible(want)))
    }
}

/// Iterator over all nodes (see [`Fdt::nodes`]).
pub struct Nodes {
    fdt: Fdt,
    at: Option<usize>,
    depth: usize,
    /// Cell counts each depth's nodes get from their parent.
    cells: [Cells; MAX_DEPTH + 1],
}

impl Iterator for Nodes {
    type Item = Node;

    fn next(&mut self) -> Option<Node> {
        let mut at = self.at?;
        self.at = None;
        loop {
            let (token, next) = self.fdt.token(at)?;
            at = next;
            match token {
                Token::BeginNode { name } => {
                    let parent_cells = *self.cells.get(self.depth)?;
                    let node = Node {
                        fdt: self.fdt,
                        name,
                        body: next,
                        parent_cells,
                    };
                    self.depth += 1;
                    *self.cells.get_mut(self.depth)? = node.own_cells();
                    self.at = Some(next);
                    return Some(node);
                }
                Token::EndNode => self.depth = self.depth.checked_sub(1)?,
                Token::Prop { .. } => {}
                Token::End => return None,
            }
        }
    }
}

impl Node {
    fn matches(&self, component: &str) -> bool {
        self.name == component
            || (!component.contains('@') && self.name.split('@').next() == Some(component))
    }

    /// Cell counts this node gives its children.
    fn own_cells(&self) -> Cells {
        let cells = |name, default| self.prop_u32(name).unwrap_or(default);
        Cells {
            address: cells("#address-cells", DEFAULT_CELLS.address),
            size: cells("#size-cells", DEFAULT_CELLS.size),
        }
    }

    /// The value of property `name`.
    pub fn prop(&self, name: &str) -> Option<&'static [u8]> {
        let mut at = self.body;
        loop {
            match self.fdt.token(at)? {
                (Token::Prop { name_offset, value }, next) => {
                    if c_str(self.fdt.strings.get(name_offset..)?) == Some(name) {
                        return Some(value);
                    }
                    at = next;
                }
                _ => return None,
            }
        }
    }

    /// A string property, without its terminating NUL.
    pub fn prop_str(&self, name: &str) -> Option<&'static str> {
        let value = self.prop(name)?;
        let text = value.strip_suffix(&[0]).unwrap_or(value);
        core::str::from_utf8(text).ok()
    }

    /// A one-cell property.
    pub fn prop_u32(&self, name: &str) -> Option<u32> {
        let value = self.prop(name)?;
        if value.len() != 4 {
            return None;
        }
        be32(value, 0)
    }

    /// Whether the `compatible` list contains `want`.
    pub fn is_compatible(&self, want: &str) -> bool {
        self.prop("compatible").is_some_and(|list| {
            list.split(|&b| b == 0)
                .any(|entry| entry == want.as_bytes())
        })
    }

    /// The direct children.
    pub fn children(&self) -> Children {
        Children {
            fdt: self.fdt,
            at: Some(self.body),
            cells: self.own_cells(),
        }
    }

    /// The `reg` entries as (address, size); entries wider than 64 bits are skipped.
    pub fn reg(&self) -> impl Iterator<Item = (u64, u64)> {
        let cells = self.parent_cells;
        let stride = (cells.address + cells.size) as usize * 4;
        let usable = stride > 0 && cells.address <= 2 && cells.size <= 2;
        let value = match self.prop("reg") {
            Some(value) if usable => value,
            _ => &[],
        };
        value.chunks_exact(stride.max(1)).map(move |entry| {
            let (address, size) = entry.split_at(cells.address as usize * 4);
            (read_cells(address), read_cells(size))
        })
    }
}

/// A big-endian number of one or two cells (0 for none).
fn read_cells(bytes: &[u8]) -> u64 {
    bytes.chunks_exact(4).fold(0, |acc, cell| {
        (acc << 32) | u64::from(be32(cell, 0).unwrap_or(0))
    })
}

/// Iterator over a node's children (see [`Node::children`]).
pub struct Children {
    fdt: Fdt,
    at: Option<usize>,
    cells: Cells,
}

impl Iterator for Children {
    type Item = Node;

    fn next(&mut self) -> Option<Node> {
        let mut at = self.at?;
        self.at = None;
        loop {
            let (token, next) = self.fdt.token(at)?;
            match token {
                Token::Prop { .. } => at = next,
                Token::BeginNode { name } => {
                    let node = Node {
                        fdt: self.fdt,
                        name,
                        body: next,
                        parent_cells: self.cells,
                    };
                    self.at = Some(self.skip_subtree(next)?);
                    return Some(node);
                }
                Token::EndNode | Token::End => return None,
            }
        }
    }
}

impl Children {
    /// Offset after the END_NODE that closes the node whose body starts at `at`.
    fn skip_subtree(&self, mut at: usize) -> Option<usize> {
        let mut open = 1usize;
        loop {
            let (token, next) = self.fdt.token(at)?;
            at = next;
            match token {
                Token::BeginNode { .. } => open += 1,
                Token::EndNode => {
                    open -= 1;
                    if open == 0 {
                        return Some(at);
                    }
                }
                Token::Prop { .. } => {}
                Token::End => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests;
