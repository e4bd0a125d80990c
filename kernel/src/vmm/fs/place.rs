//! vCPU placement for fs VMs (static partitioning: one vCPU per physical CPU).
//! `phys_cpu_sets` / `phys_cpu_ids` when given (the shared crate's rule, as in
//! xtask), else the next physical CPUs no other VM uses. A VM that asks for a taken
//! CPU, or for more CPUs than are left, is refused; the CPUs of the VMs built into
//! the hypervisor are taken from the start.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use vmconfig::cpus::pinned_cpu;
use vmconfig::{KeyPath, VmConfig};

use crate::spec::VmSpec;

/// Who runs on each physical CPU: (VM id, VM name).
pub struct CpuOwners {
    owner: Vec<Option<(u32, String)>>,
}

/// Why a VM cannot be placed: the config key and the reason.
pub type PlaceError = (KeyPath, String);

impl CpuOwners {
    /// `cpus` physical CPUs, those of `builtin` taken.
    pub fn new(cpus: usize, builtin: &[VmSpec]) -> Self {
        let mut owner = vec![None; cpus];
        for spec in builtin {
            for &c in spec.pcpu_of_vcpu.iter() {
                if let Some(o) = owner.get_mut(c as usize) {
                    *o = Some((spec.id, String::from(&*spec.name)));
                }
            }
        }
        Self { owner }
    }

    /// Places every vCPU of `cfg` on the CPUs with these MPIDRs; on success the CPUs
    /// are taken and their indices returned, one per vCPU.
    pub fn place(&mut self, cfg: &VmConfig, mpidrs: &[u64]) -> Result<Vec<u32>, PlaceError> {
        let pinned = cfg.phys_cpu_sets.is_some() || cfg.phys_cpu_ids.is_some();
        let pcpus = if pinned {
            self.pinned(cfg, mpidrs)?
        } else {
            self.free(cfg)?
        };
        for &p in &pcpus {
            if let Some(o) = self.owner.get_mut(p as usize) {
                *o = Some((cfg.id, cfg.name.clone()));
            }
        }
        Ok(pcpus)
    }

    fn pinned(&self, cfg: &VmConfig, mpidrs: &[u64]) -> Result<Vec<u32>, PlaceError> {
        let mut pcpus: Vec<u32> = Vec::new();
        for vcpu in 0..cfg.cpu_num as usize {
            let sets = cfg.phys_cpu_sets.as_deref();
            let ids = cfg.phys_cpu_ids.as_deref();
            let Some((key, wanted)) = pinned_cpu(sets, ids, vcpu, mpidrs, "this machine") else {
                continue;
            };
            let key = KeyPath::new("base").key(key).index(vcpu);
            let p = wanted.map_err(|why| (key.clone(), why))?;
            let mpidr = mpidrs.get(p as usize).copied().unwrap_or(0);
            if let Some(Some((id, name))) = self.owner.get(p as usize) {
                return Err((
                    key,
                    format!("physical CPU {p} (MPIDR {mpidr:#x}) already runs a vCPU of VM {id} ({name})"),
                ));
            }
            if pcpus.contains(&p) {
                return Err((
                    key,
                    format!("physical CPU {p} (MPIDR {mpidr:#x}) is given to two vCPUs; a CPU runs one vCPU"),
                ));
            }
            pcpus.push(p);
        }
        Ok(pcpus)
    }

    fn free(&self, cfg: &VmConfig) -> Result<Vec<u32>, PlaceError> {
        let free: Vec<u32> = (0u32..)
            .zip(&self.owner)
            .filter(|(_, o)| o.is_none())
            .map(|(c, _)| c)
            .collect();
        if free.len() < cfg.cpu_num as usize {
            return Err((
                KeyPath::new("base").key("cpu_num"),
                format!(
                    "{} vCPUs need {} physical CPUs of their own, but only {} of this machine's {} are free",
                    cfg.cpu_num,
                    cfg.cpu_num,
                    free.len(),
                    self.owner.len()
                ),
            ));
        }
        Ok(free.into_iter().take(cfg.cpu_num as usize).collect())
    }
}
