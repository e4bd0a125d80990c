//! Which physical CPU a pinned vCPU asks for (static partitioning: one vCPU per CPU).
//!
//! Per vCPU: `phys_cpu_sets[i]` (a CPU bitmask; its lowest set bit), else
//! `phys_cpu_ids[i]` (an MPIDR, looked up in the machine's CPU list). Unpinned vCPUs
//! take the next free CPUs; that, and who owns which CPU, is up to the caller.
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// The CPU index (into `mpidrs`) vCPU `vcpu` asks for, and the key that asks
/// (`phys_cpu_sets` or `phys_cpu_ids`). `machine` names the machine in messages
/// ("board qemu-aarch64", "this machine"). `None` when the vCPU is not pinned.
pub fn pinned_cpu(
    sets: Option<&[u64]>,
    ids: Option<&[u64]>,
    vcpu: usize,
    mpidrs: &[u64],
    machine: &str,
) -> Option<(&'static str, Result<u32, String>)> {
    if let Some(sets) = sets {
        return Some(("phys_cpu_sets", by_mask(sets, vcpu, mpidrs.len(), machine)));
    }
    let ids = ids?;
    let Some(&mpidr) = ids.get(vcpu) else {
        return Some(("phys_cpu_ids", Err("no entry for this vCPU".into())));
    };
    let found = match mpidrs.iter().position(|&m| m == mpidr) {
        Some(i) => Ok(i as u32),
        None => {
            let known: Vec<String> = mpidrs.iter().map(|m| format!("{m:#x}")).collect();
            Err(format!(
                "{machine} has no CPU with MPIDR {mpidr:#x} (it has {})",
                known.join(", ")
            ))
        }
    };
    Some(("phys_cpu_ids", found))
}

fn by_mask(sets: &[u64], vcpu: usize, cpus: usize, machine: &str) -> Result<u32, String> {
    let Some(&mask) = sets.get(vcpu) else {
        return Err("no entry for this vCPU".into());
    };
    if mask == 0 {
        return Err("CPU mask is 0".into());
    }
    let bit = mask.trailing_zeros();
    if bit as usize >= cpus {
        return Err(format!(
            "mask {mask:#x} names CPU {bit} but {machine} has CPUs 0..{cpus}"
        ));
    }
    Ok(bit)
}
