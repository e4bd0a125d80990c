//! Device trees (feature `devtree`): allocation-free helpers over the `fdt` crate
//! ([`dt`]), the structural check that keeps a bad blob from panicking it
//! ([`check`]), and the rule that turns AxVisor's device-tree passthrough entries
//! (`passthrough_devices = [["/pl011@9000000"]]`, `excluded_devices = [["/path"]]`)
//! into host windows and interrupts ([`Tree::passthrough`]).
//!
//! The rule runs in xtask against the board's DTB (QEMU's own, dumped) and in the
//! hypervisor against the DTB it booted with, so both answer the same.

pub mod check;
pub mod dt;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use ::fdt::Fdt;

use crate::range::{Range, PAGE};
use dt::{Node, NodePath};

/// Compatible strings of a GIC (any version): interrupt specifiers of 3+ cells.
pub const GIC: &[&str] = &[
    "arm,gic-v3",
    "arm,cortex-a15-gic",
    "arm,gic-400",
    "arm,cortex-a7-gic",
    "arm,cortex-a9-gic",
    "qcom,msm-qgic2",
];
/// Compatible strings of a RISC-V PLIC: one-cell source numbers.
pub const PLIC: &[&str] = &["riscv,plic0", "sifive,plic-1.0.0"];

/// Decodes one GIC interrupt specifier (type, number, flags[, ...]) into an INTID.
pub fn gic_intid(kind: u32, number: u32) -> Option<u32> {
    match kind {
        0 if number < 988 => Some(number + 32),
        1 if number < 16 => Some(number + 16),
        // GICv3.1 extended SPI and PPI ranges.
        2 if number < 1024 => Some(number + 4096),
        3 if number < 64 => Some(number + 1056),
        _ => None,
    }
}

/// One MMIO window of a device passed through by path: host addresses, mapped at the
/// same guest-physical addresses (as AxVisor does), whole 4 KiB pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DtWindow {
    /// The node's full path (`/soc/serial@feb50000`).
    pub node: String,
    /// The `reg` entry, translated to a CPU physical address and widened to pages.
    pub range: Range,
    /// The node's first interrupt as the guest's interrupt controller numbers it (a
    /// GIC INTID, a PLIC source); `None` when it has none or it is wired to another
    /// controller (a GPIO or a nexus).
    pub irq: Option<u32>,
}

/// A device tree checked to be readable.
pub struct Tree<'a> {
    fdt: Fdt<'a>,
}

impl<'a> Tree<'a> {
    /// The tree in `dtb`, after the structural check (a malformed blob is an error,
    /// never a panic in the `fdt` crate).
    pub fn new(dtb: &'a [u8]) -> Result<Self, String> {
        check::check(dtb).map_err(|e| format!("the device tree is malformed ({e:?})"))?;
        let fdt = Fdt::new(dtb).map_err(|e| format!("the device tree is malformed ({e:?})"))?;
        Ok(Self { fdt })
    }

    /// AxVisor's device-tree passthrough of `path`: the node and every enabled node
    /// below it with MMIO registers, except what `excluded` names (nodes and the
    /// subtrees under them). Each `reg` entry is one window. Nodes that are not
    /// devices are skipped (`memory`, `/reserved-memory`, `/cpus`, children of
    /// buses without sizes); a node the hypervisor keeps for itself (an interrupt
    /// controller, the `/chosen/stdout-path` console) is an error naming it. An
    /// error too: no such node, or nothing with registers under it.
    pub fn passthrough(&self, path: &str, excluded: &[&str]) -> Result<Vec<DtWindow>, String> {
        if !path.starts_with('/') {
            return Err(format!(
                "{path:?} is not a device-tree path (it must start with '/')"
            ));
        }
        let want = NodePath {
            head: path,
            tail: "",
        };
        let excluded: Vec<NodePath<'_>> = excluded
            .iter()
            .map(|p| NodePath { head: p, tail: "" })
            .collect();
        let console = self.console();
        let mut found = false;
        let mut windows = Vec::new();
        let mut problem = None;
        dt::walk(&self.fdt, &mut |nodes| {
            if problem.is_some() || !under(want, nodes) {
                return;
            }
            found = true;
            let named = want.matches(nodes);
            if named && nodes.last().is_some_and(|n| !dt::is_enabled(*n)) {
                problem = Some(format!(
                    "{} is disabled in the host device tree (status {:?})",
                    full_path(nodes),
                    nodes
                        .last()
                        .and_then(|n| dt::prop_str(*n, "status"))
                        .unwrap_or("")
                ));
                return;
            }
            if excluded.iter().any(|e| under(*e, nodes)) || !is_device(nodes) {
                return;
            }
            match self.windows_of(nodes, console) {
                Ok(w) => windows.extend(w),
                Err(e) => problem = Some(e),
            }
        });
        if let Some(e) = problem {
            return Err(e);
        }
        if !found {
            return Err(format!("no node {path} in the host device tree"));
        }
        if windows.is_empty() {
            return Err(format!(
                "{path}: nothing with MMIO registers (reg) at or under it is passed through"
            ));
        }
        Ok(merge_shared_pages(windows))
    }

    /// The node `/chosen/stdout-path` names: the hypervisor's console.
    fn console(&self) -> Option<NodePath<'a>> {
        let root = dt::root(&self.fdt)?;
        let chosen = dt::child(root, "chosen")?;
        let aliases = dt::child(root, "aliases");
        let spec = dt::prop_str(chosen, "stdout-path")
            .or_else(|| dt::prop_str(chosen, "linux,stdout-path"))?;
        dt::resolve_path(aliases, spec)
    }

    fn windows_of(
        &self,
        nodes: &[Node<'_, 'a>],
        console: Option<NodePath<'_>>,
    ) -> Result<Vec<DtWindow>, String> {
        if nodes.len() < 2 {
            return Ok(Vec::new());
        }
        let name = full_path(nodes);
        // An interrupt controller and what lies under it (a GICv3 ITS).
        if nodes[1..]
            .iter()
            .any(|n| dt::prop(*n, "interrupt-controller").is_some())
        {
            return Err(format!(
                "{name} is an interrupt controller, which the hypervisor keeps (list it in excluded_devices)"
            ));
        }
        if console.is_some_and(|c| c.matches(nodes)) {
            return Err(format!(
                "{name} is the hypervisor's console (/chosen/stdout-path; list it in excluded_devices)"
            ));
        }
        let irq = self.first_irq(nodes);
        Ok(dt::regs(nodes)
            .filter(|&(_, size)| size != 0)
            .filter_map(|(base, size)| {
                let start = base & !(PAGE - 1);
                let end = base.checked_add(size)?.checked_next_multiple_of(PAGE)?;
                Some(DtWindow {
                    node: name.clone(),
                    range: Range::new(start, end - start),
                    irq,
                })
            })
            .collect())
    }

    /// The first interrupt of `nodes.last()`, numbered for the guest's controller.
    fn first_irq(&self, nodes: &[Node<'_, 'a>]) -> Option<u32> {
        let &node = nodes.last()?;
        let (parent, spec) = match dt::prop(node, "interrupts-extended") {
            Some(v) => (dt::be32_at(v, 0)?, v.get(4..)?),
            None => {
                let v = dt::prop(node, "interrupts")?;
                let parent = nodes
                    .iter()
                    .rev()
                    .find_map(|n| dt::prop_u32(*n, "interrupt-parent"))?;
                (parent, v)
            }
        };
        let ctrl = self.fdt.find_phandle(parent)?;
        if dt::compatible_with(ctrl, GIC) {
            gic_intid(dt::be32_at(spec, 0)?, dt::be32_at(spec, 1)?)
        } else if dt::compatible_with(ctrl, PLIC) {
            dt::be32_at(spec, 0).filter(|&s| s != 0)
        } else {
            None
        }
    }
}

/// Windows of devices that share a page (QEMU's virtio-mmio transports sit 0x200
/// apart) become one: a page is mapped once. The first node names the window and
/// gives its interrupt. In address order.
fn merge_shared_pages(mut windows: Vec<DtWindow>) -> Vec<DtWindow> {
    windows.sort_by_key(|w| w.range.base);
    let mut out: Vec<DtWindow> = Vec::with_capacity(windows.len());
    for w in windows {
        match out.last_mut() {
            Some(last) if last.range.overlaps(&w.range) => {
                let end = last.range.end().max(w.range.end());
                if let Some(end) = end {
                    last.range = Range::new(last.range.base, end - last.range.base);
                }
            }
            _ => out.push(w),
        }
    }
    out
}

/// Whether `nodes` (root first) is the node `path` names or lies under it.
fn under(path: NodePath<'_>, nodes: &[Node<'_, '_>]) -> bool {
    (1..=nodes.len()).any(|n| path.matches(&nodes[..n]))
}

/// Whether `nodes.last()` is a device: enabled, with `reg`, not memory, not a CPU
/// or anything else whose bus gives no sizes, not firmware's reserved memory.
fn is_device(nodes: &[Node<'_, '_>]) -> bool {
    let [.., parent, node] = nodes else {
        return false;
    };
    let top = nodes.get(1).map(|n| dt::base_name(*n));
    dt::is_enabled(*node)
        && dt::prop(*node, "reg").is_some()
        && dt::child_cells(*parent).size != 0
        && dt::base_name(*node) != "memory"
        && dt::prop_str(*node, "device_type") != Some("memory")
        && !matches!(top, Some("reserved-memory" | "cpus" | "chosen" | "aliases"))
}

fn full_path(nodes: &[Node<'_, '_>]) -> String {
    if nodes.len() <= 1 {
        return String::from("/");
    }
    let mut s = String::new();
    for n in &nodes[1..] {
        s.push('/');
        s.push_str(n.name);
    }
    s
}

#[cfg(test)]
mod tests;
