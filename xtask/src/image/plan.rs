//! Where U-Boot loads each file from the boot partition: addresses computed on the
//! host so that nothing overlaps, everything is aligned and inside the board's RAM,
//! away from the hypervisor (from the 2 MiB-aligned base `booti` uses up to the end of
//! its image, .bss included), the board's reserved ranges, identity-mapped VM memory,
//! and the top of RAM where U-Boot keeps itself, its heap, stack and device tree.
use anyhow::{bail, Result};

use crate::config::range::{human_size, Range};
use crate::config::vm::{MemRegion, Vm};
use crate::config::Board;

/// `booti` places an arm64 Image at a 2 MiB-aligned base plus its text_offset.
pub const BOOTI_ALIGN: u64 = 2 << 20;
/// Kept free below the end of the RAM U-Boot runs in: U-Boot relocates itself, its
/// malloc area, stack and device tree there, and `load` refuses to overwrite them.
pub const UBOOT_TOP_RESERVE: u64 = 128 << 20;
/// U-Boot's own addresses (and `fdt_high` on QEMU) are below 4 GiB.
const LOW_4G: u64 = 1 << 32;

/// Where `booti` runs an arm64 Image: align_up(U-Boot's first DRAM bank, 2 MiB) +
/// text_offset (header flags bit 3 clear: the image is moved there if needed).
pub fn booti_address(uboot_dram_base: u64, text_offset: u64) -> Option<u64> {
    uboot_dram_base
        .checked_next_multiple_of(BOOTI_ALIGN)?
        .checked_add(text_offset)
}

/// Something to place: a name for messages, the bytes to reserve, the alignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Want {
    pub name: String,
    pub size: u64,
    pub align: u64,
}

/// Something placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    pub name: String,
    pub range: Range,
}

/// The RAM files may go to, and what to keep out of it.
#[derive(Clone, Debug, Default)]
pub struct Space {
    pub windows: Vec<Range>,
    pub excluded: Vec<(String, Range)>,
}

impl Space {
    /// The space on `board` around a hypervisor running at `hv_load_addr` with
    /// `text_offset` and `image_size` (from its Image header), given its VMs.
    pub fn for_board(board: &Board, text_offset: u64, image_size: u64, vms: &[&Vm]) -> Space {
        let hv = board.hv_load_addr;
        let mut windows = Vec::new();
        if let Some(r) = board.ram.iter().find(|r| r.contains(hv)) {
            let cap = if hv < LOW_4G { LOW_4G } else { u64::MAX };
            let end = r.end().unwrap_or(u64::MAX).min(cap);
            let end = end.saturating_sub(UBOOT_TOP_RESERVE);
            if end > r.base {
                windows.push(Range::new(r.base, end - r.base));
            }
        }
        let mut excluded: Vec<(String, Range)> = board
            .reserved
            .iter()
            .map(|r| ("a reserved range of the board".to_string(), *r))
            .collect();
        let base = hv.saturating_sub(text_offset);
        let end = hv.saturating_add(image_size).next_multiple_of(BOOTI_ALIGN);
        excluded.push(("the hypervisor".into(), Range::new(base, end - base)));
        for vm in vms {
            for m in vm.memory.iter().filter(|m| host_fixed(m)) {
                excluded.push((format!("memory of VM {}", vm.name), m.range));
            }
        }
        Space { windows, excluded }
    }
}

/// Identity (1) and reserved (2) regions sit at fixed host addresses.
fn host_fixed(m: &MemRegion) -> bool {
    m.map_type == 1 || m.map_type == 2
}

/// Places `wants` in order, each at the lowest aligned address that fits.
pub fn place(space: &Space, wants: &[Want]) -> Result<Vec<Placed>> {
    let mut taken: Vec<Range> = space.excluded.iter().map(|(_, r)| *r).collect();
    let mut out = Vec::new();
    for w in wants {
        let Some(range) = first_fit(&space.windows, &taken, w) else {
            bail!(
                "no room in RAM for {} ({}): the free RAM below U-Boot's area is {}",
                w.name,
                human_size(w.size),
                describe(&space.windows)
            );
        };
        taken.push(range);
        out.push(Placed {
            name: w.name.clone(),
            range,
        });
    }
    Ok(out)
}

fn describe(windows: &[Range]) -> String {
    let list: Vec<String> = windows.iter().map(|w| w.to_string()).collect();
    if list.is_empty() {
        "empty".into()
    } else {
        list.join(", ")
    }
}

fn first_fit(windows: &[Range], taken: &[Range], w: &Want) -> Option<Range> {
    let align = w.align.max(1);
    let size = w.size.max(1);
    for win in windows {
        let win_end = win.end()?;
        let mut at = win.base.checked_next_multiple_of(align)?;
        loop {
            let end = at.checked_add(size)?;
            if end > win_end {
                break;
            }
            let cand = Range::new(at, size);
            match taken
                .iter()
                .filter(|t| t.overlaps(&cand))
                .map(|t| t.end())
                .max()
            {
                None => return Some(cand),
                Some(next) => at = next?.checked_next_multiple_of(align)?,
            }
        }
    }
    None
}
