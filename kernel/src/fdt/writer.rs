//! The DTB writer itself (layout per the Devicetree Specification, flattened format v17).
//!
//! Why our own and not rust-vmm's `vm-fdt` (checked with 0.3.0, the latest, in its
//! no_std `alloc` mode, on aarch64-unknown-none-softfloat and riscv64gc-unknown-none-elf):
//! it builds there and writes our guest DTBs correctly (every guest_dtb test passed with
//! it behind this interface), but
//! - it refuses property names longer than 31 characters and node names that do not
//!   start with a letter (the specification's "should" taken as "must"), which real
//!   board DTBs break: RK3568's `rockchip,system-power-controller`, RK3588's
//!   `snps,dis-u2-freeclk-exists-quirk` and `simple-audio-card,bitclock-master`. The
//!   platform tests rewrite those DTBs with this writer (as U-Boot would), and a guest
//!   DTB that carries a passed-through host device node needs the same. Upstream
//!   pull requests adding a `relaxed_checks` feature (rust-vmm/vm-fdt #78, #79) were
//!   closed unmerged;
//! - its no_std mode pulls in hashbrown 0.14 with ahash, zerocopy, once_cell and
//!   allocator-api2 (for a set of phandle values) and allocates a `CString` per name:
//!   the guest-less hypervisor grew by 12,288 bytes on both architectures (about 10%),
//!   for a writer that is 250 lines here;
//! - `/memreserve/` entries must all be known before the first node, and a property
//!   name repeated in one node is not detected (here it is an error).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

const MAGIC: u32 = 0xd00d_feed;
const VERSION: u32 = 17;
const LAST_COMPATIBLE_VERSION: u32 = 16;
const HEADER_LEN: usize = 40;
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const END: u32 = 9;

/// Why a tree could not be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FdtError {
    /// A property was added with no node open.
    PropertyOutsideNode,
    /// A property was added to a node after one of its child nodes.
    PropertyAfterChild,
    /// The same property name twice in one node.
    DuplicateProperty(String),
    /// `end_node` with no node open.
    UnbalancedEnd,
    /// `finish` while nodes are still open (how many).
    UnclosedNodes(usize),
    /// No root node, or a second node at the top level.
    BadRoot,
    /// A node or property name that is empty (non-root) or contains a NUL byte.
    BadName,
    /// A string value containing a NUL byte.
    BadString,
    /// The blob would exceed 4 GiB.
    TooLarge,
}

/// One open node: the property names it has, whether a child was started.
#[derive(Default)]
struct OpenNode {
    props: Vec<u32>,
    has_child: bool,
}

/// Builds a DTB; see the module documentation.
pub struct FdtWriter {
    structure: Vec<u8>,
    strings: Vec<u8>,
    string_offsets: BTreeMap<String, u32>,
    reserved: Vec<(u64, u64)>,
    open: Vec<OpenNode>,
    root_done: bool,
    boot_cpuid: u32,
    next_phandle: u32,
}

impl Default for FdtWriter {
    fn default() -> Self {
        Self::new()
    }
}

fn be32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn len_u32(n: usize) -> Result<u32, FdtError> {
    u32::try_from(n).map_err(|_| FdtError::TooLarge)
}

impl FdtWriter {
    pub fn new() -> Self {
        Self {
            structure: Vec::new(),
            strings: Vec::new(),
            string_offsets: BTreeMap::new(),
            reserved: Vec::new(),
            open: Vec::new(),
            root_done: false,
            boot_cpuid: 0,
            next_phandle: 1,
        }
    }

    /// Adds a `/memreserve/` entry (any time before `finish`).
    pub fn add_mem_reserve(&mut self, address: u64, size: u64) {
        self.reserved.push((address, size));
    }

    /// The header's `boot_cpuid_phys`.
    pub fn set_boot_cpuid(&mut self, id: u32) {
        self.boot_cpuid = id;
    }

    /// A fresh phandle value (1, 2, ...) to put in a node's `phandle` property and
    /// reference from others.
    pub fn alloc_phandle(&mut self) -> u32 {
        let p = self.next_phandle;
        self.next_phandle = self.next_phandle.saturating_add(1);
        p
    }

    /// Opens a node; the first one must be the root, named "".
    pub fn begin_node(&mut self, name: &str) -> Result<(), FdtError> {
        let is_root = self.open.is_empty();
        if is_root && (self.root_done || !name.is_empty()) {
            return Err(FdtError::BadRoot);
        }
        if name.contains('\0') || (!is_root && name.is_empty()) {
            return Err(FdtError::BadName);
        }
        if let Some(parent) = self.open.last_mut() {
            parent.has_child = true;
        }
        be32(&mut self.structure, BEGIN_NODE);
        self.structure.extend_from_slice(name.as_bytes());
        self.structure.push(0);
        pad4(&mut self.structure);
        self.open.push(OpenNode::default());
        Ok(())
    }

    /// Closes the innermost open node.
    pub fn end_node(&mut self) -> Result<(), FdtError> {
        self.open.pop().ok_or(FdtError::UnbalancedEnd)?;
        be32(&mut self.structure, END_NODE);
        if self.open.is_empty() {
            self.root_done = true;
        }
        Ok(())
    }

    fn string_offset(&mut self, name: &str) -> Result<u32, FdtError> {
        if let Some(&off) = self.string_offsets.get(name) {
            return Ok(off);
        }
        let off = len_u32(self.strings.len())?;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        self.string_offsets.insert(String::from(name), off);
        Ok(off)
    }

    /// A property with a raw value.
    pub fn property_bytes(&mut self, name: &str, value: &[u8]) -> Result<(), FdtError> {
        if name.is_empty() || name.contains('\0') {
            return Err(FdtError::BadName);
        }
        let node = self.open.last().ok_or(FdtError::PropertyOutsideNode)?;
        if node.has_child {
            return Err(FdtError::PropertyAfterChild);
        }
        let len = len_u32(value.len())?;
        let off = self.string_offset(name)?;
        let node = self.open.last_mut().ok_or(FdtError::PropertyOutsideNode)?;
        if node.props.contains(&off) {
            return Err(FdtError::DuplicateProperty(String::from(name)));
        }
        node.props.push(off);
        be32(&mut self.structure, PROP);
        be32(&mut self.structure, len);
        be32(&mut self.structure, off);
        self.structure.extend_from_slice(value);
        pad4(&mut self.structure);
        Ok(())
    }

    /// A property with no value (a flag such as `interrupt-controller`).
    pub fn property_null(&mut self, name: &str) -> Result<(), FdtError> {
        self.property_bytes(name, &[])
    }

    pub fn property_u32(&mut self, name: &str, value: u32) -> Result<(), FdtError> {
        self.property_bytes(name, &value.to_be_bytes())
    }

    /// A 64-bit value as two cells (high first).
    pub fn property_u64(&mut self, name: &str, value: u64) -> Result<(), FdtError> {
        self.property_bytes(name, &value.to_be_bytes())
    }

    /// A list of 32-bit cells.
    pub fn property_cells(&mut self, name: &str, cells: &[u32]) -> Result<(), FdtError> {
        let bytes: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
        self.property_bytes(name, &bytes)
    }

    pub fn property_string(&mut self, name: &str, value: &str) -> Result<(), FdtError> {
        self.property_string_list(name, &[value])
    }

    /// NUL-separated strings (`compatible = "a", "b"`).
    pub fn property_string_list(&mut self, name: &str, values: &[&str]) -> Result<(), FdtError> {
        let mut bytes = Vec::new();
        for v in values {
            if v.contains('\0') {
                return Err(FdtError::BadString);
            }
            bytes.extend_from_slice(v.as_bytes());
            bytes.push(0);
        }
        self.property_bytes(name, &bytes)
    }

    /// Lays out the blob: header, reservation block, structure block, strings block.
    pub fn finish(mut self) -> Result<Vec<u8>, FdtError> {
        if !self.open.is_empty() {
            return Err(FdtError::UnclosedNodes(self.open.len()));
        }
        if !self.root_done {
            return Err(FdtError::BadRoot);
        }
        be32(&mut self.structure, END);
        let rsv_off = HEADER_LEN.next_multiple_of(8);
        let rsv_len = (self.reserved.len() + 1) * 16;
        let struct_off = rsv_off + rsv_len;
        let strings_off = struct_off + self.structure.len();
        let total = strings_off + self.strings.len();
        let header = [
            MAGIC,
            len_u32(total)?,
            len_u32(struct_off)?,
            len_u32(strings_off)?,
            len_u32(rsv_off)?,
            VERSION,
            LAST_COMPATIBLE_VERSION,
            self.boot_cpuid,
            len_u32(self.strings.len())?,
            len_u32(self.structure.len())?,
        ];
        let mut out = Vec::with_capacity(total);
        header.iter().for_each(|&v| be32(&mut out, v));
        out.resize(rsv_off, 0);
        for &(addr, size) in self.reserved.iter().chain(core::iter::once(&(0, 0))) {
            out.extend_from_slice(&addr.to_be_bytes());
            out.extend_from_slice(&size.to_be_bytes());
        }
        out.extend_from_slice(&self.structure);
        out.extend_from_slice(&self.strings);
        Ok(out)
    }
}
