//! The device tree of a bench's bare side: the guest DTB the hypervisor generates
//! (captured from its console, see `vmconfig::dtbdump`), plus the devices of QEMU's
//! own machine that only the firmware under the bare guest uses and a VM never sees:
//! on riscv64, OpenSBI finds its timer and inter-processor interrupts in the CLINT
//! node and its system reset in the test device. Without them OpenSBI starts no
//! second hart. The nodes are copied from QEMU's tree (`-machine ...,dumpdtb=`), their
//! `interrupts-extended` pointed at the guest tree's hart interrupt controllers.
use anyhow::{bail, ensure, Context, Result};

/// Compatibles of devices only the firmware uses (copied when the guest tree has none).
pub const FIRMWARE_ONLY: &[&str] = &["riscv,clint0", "sifive,test0"];

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_END: u32 = 9;

/// A node to add to the root: name and properties (name, raw value).
#[derive(Debug, PartialEq)]
pub struct Node {
    pub name: String,
    pub props: Vec<(String, Vec<u8>)>,
}

fn be32(b: &[u8], at: usize) -> Result<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .with_context(|| format!("the DTB ends before offset {at:#x}"))
}

/// The phandles of the harts' interrupt controllers (`/cpus/cpu@N/interrupt-controller`),
/// in the order of the harts' `reg`.
fn hart_intcs(fdt: &fdt::Fdt) -> Result<Vec<u32>> {
    let cpus = fdt.find_node("/cpus").context("no /cpus node")?;
    let mut harts = Vec::new();
    for cpu in cpus.children().filter(|c| c.name.starts_with("cpu@")) {
        let reg = cpu
            .property("reg")
            .and_then(|p| p.as_usize())
            .with_context(|| format!("/cpus/{} has no reg", cpu.name))?;
        let phandle = cpu
            .children()
            .find(|c| c.name == "interrupt-controller")
            .and_then(|c| c.property("phandle"))
            .and_then(|p| p.as_usize());
        if let Some(ph) = phandle {
            harts.push((reg, ph as u32));
        }
    }
    harts.sort();
    Ok(harts.into_iter().map(|(_, ph)| ph).collect())
}

/// The nodes of `machine` (QEMU's tree) with a [`FIRMWARE_ONLY`] compatible that
/// `guest` lacks, made to fit `guest`.
pub fn firmware_nodes(guest: &[u8], machine: &[u8]) -> Result<Vec<Node>> {
    let g = fdt::Fdt::new(guest).map_err(|e| anyhow::anyhow!("guest DTB: {e:?}"))?;
    let m = fdt::Fdt::new(machine).map_err(|e| anyhow::anyhow!("QEMU's DTB: {e:?}"))?;
    let root_cells = g.root().cell_sizes();
    ensure!(
        (root_cells.address_cells, root_cells.size_cells) == (2, 2),
        "the guest DTB's root has {}/{} address/size cells, not 2/2",
        root_cells.address_cells,
        root_cells.size_cells
    );
    let (g_harts, m_harts) = (hart_intcs(&g)?, hart_intcs(&m)?);
    let mut nodes = Vec::new();
    for &compat in FIRMWARE_ONLY {
        if g.find_compatible(&[compat]).is_some() {
            continue;
        }
        let Some(node) = m.find_compatible(&[compat]) else {
            continue;
        };
        let mut props = Vec::new();
        for p in node.properties() {
            match p.name {
                "compatible" | "reg" => props.push((p.name.to_string(), p.value.to_vec())),
                "interrupts-extended" => {
                    let mut out = Vec::new();
                    for pair in p.value.chunks(8) {
                        ensure!(
                            pair.len() == 8,
                            "{}: interrupts-extended is not (phandle, irq) pairs",
                            node.name
                        );
                        let (ph, irq) = (be32(pair, 0)?, be32(pair, 4)?);
                        let hart = m_harts.iter().position(|&h| h == ph).with_context(|| {
                            format!(
                                "{}: phandle {ph} is no hart's interrupt controller",
                                node.name
                            )
                        })?;
                        // Harts the guest does not have are left out.
                        if let Some(&gph) = g_harts.get(hart) {
                            out.extend(gph.to_be_bytes());
                            out.extend(irq.to_be_bytes());
                        }
                    }
                    props.push((p.name.to_string(), out));
                }
                _ => {}
            }
        }
        let parent = node.name;
        // The copied reg must be in 2/2 cells, as the guest's root is.
        let soc = m
            .all_nodes()
            .find(|n| n.children().any(|c| c.name == parent))
            .map(|n| n.cell_sizes());
        if let Some(c) = soc {
            ensure!(
                (c.address_cells, c.size_cells) == (2, 2),
                "QEMU's {parent} sits under a bus of {}/{} cells, not 2/2",
                c.address_cells,
                c.size_cells
            );
        }
        nodes.push(Node {
            name: node.name.to_string(),
            props,
        });
    }
    Ok(nodes)
}

/// `dtb` with `nodes` added as children of its root node.
pub fn add_to_root(dtb: &[u8], nodes: &[Node]) -> Result<Vec<u8>> {
    ensure!(be32(dtb, 0)? == 0xd00d_feed, "not a DTB (no magic)");
    let total = be32(dtb, 4)? as usize;
    let (off_struct, off_strings) = (be32(dtb, 8)? as usize, be32(dtb, 12)? as usize);
    let off_rsv = be32(dtb, 16)? as usize;
    let (size_strings, size_struct) = (be32(dtb, 32)? as usize, be32(dtb, 36)? as usize);
    ensure!(
        off_rsv >= 40
            && off_rsv <= off_struct
            && off_struct + size_struct <= total
            && off_strings + size_strings <= total
            && total <= dtb.len(),
        "the DTB's header does not fit its size"
    );
    let structure = &dtb[off_struct..off_struct + size_struct];
    // The root's end: the FDT_END_NODE right before FDT_END.
    ensure!(
        size_struct >= 8
            && size_struct % 4 == 0
            && be32(structure, size_struct - 4)? == FDT_END
            && be32(structure, size_struct - 8)? == FDT_END_NODE,
        "the DTB's structure does not end with the root's end"
    );
    let mut strings = dtb[off_strings..off_strings + size_strings].to_vec();
    let mut added = Vec::new();
    for node in nodes {
        added.extend(FDT_BEGIN_NODE.to_be_bytes());
        added.extend(node.name.as_bytes());
        added.push(0);
        pad4(&mut added);
        for (name, value) in &node.props {
            let at = strings.len() as u32;
            strings.extend(name.as_bytes());
            strings.push(0);
            added.extend(FDT_PROP.to_be_bytes());
            added.extend((value.len() as u32).to_be_bytes());
            added.extend(at.to_be_bytes());
            added.extend(value);
            pad4(&mut added);
        }
        added.extend(FDT_END_NODE.to_be_bytes());
    }
    let mut new_struct = structure[..size_struct - 8].to_vec();
    new_struct.extend(added);
    new_struct.extend(&structure[size_struct - 8..]);
    let rsv = &dtb[off_rsv..off_struct];
    let off_struct = 40 + rsv.len();
    let off_strings = off_struct + new_struct.len();
    let total = off_strings + strings.len();
    let mut out = dtb[..40].to_vec();
    for (at, v) in [
        (4, total),
        (8, off_struct),
        (12, off_strings),
        (16, 40),
        (32, strings.len()),
        (36, new_struct.len()),
    ] {
        let Ok(v) = u32::try_from(v) else {
            bail!("the DTB grows past 4 GiB");
        };
        out[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }
    out.extend(rsv);
    out.extend(new_struct);
    out.extend(strings);
    Ok(out)
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

/// The guest DTB for the bare side: with [`firmware_nodes`] of QEMU's tree added.
pub fn bare_dtb(guest: &[u8], machine: &[u8]) -> Result<(Vec<u8>, Vec<String>)> {
    let nodes = firmware_nodes(guest, machine)?;
    let names = nodes.iter().map(|n| n.name.clone()).collect();
    Ok((add_to_root(guest, &nodes)?, names))
}
