//! vCPU placement: every vCPU gets its own physical CPU (static partitioning).
//!
//! Per vCPU: `phys_cpu_sets[i]` (a CPU bitmask; its lowest set bit), else
//! `phys_cpu_ids[i]` (an MPIDR, looked up in the board's `cpu_mpidrs`), else the next
//! free CPUs, handed out in VM order after all pinned vCPUs are placed.
use super::board::Board;
use super::diag::{Diagnostic, KeyPath, Report, Severity};
use super::vm::Vm;

/// Who owns a physical CPU: (VM name, vCPU index).
type Owner = Option<(String, u32)>;

/// Fills `vm.pcpus` for every VM, or reports why it cannot.
pub fn place_vcpus(board: &Board, vms: &mut [Vm], report: &mut Report) {
    let total: u64 = vms.iter().map(|v| u64::from(v.cpu_num)).sum();
    if total > u64::from(board.smp) {
        let per_vm: Vec<String> = vms
            .iter()
            .map(|v| format!("{}: {}", v.name, v.cpu_num))
            .collect();
        report.push(Diagnostic {
            severity: Severity::Error,
            file: board.shown.clone(),
            line_col: board.smp_at,
            key: KeyPath::new("smp"),
            message: format!(
                "the VMs need {total} vCPUs ({}) but board {} has {} CPUs; each vCPU needs a CPU of its own",
                per_vm.join(", "),
                board.name,
                board.smp
            ),
        });
        return;
    }
    let mut owner: Vec<Owner> = vec![None; board.smp as usize];
    for vm in vms.iter_mut() {
        if vm.phys_cpu_sets.is_some() || vm.phys_cpu_ids.is_some() {
            place_pinned(board, vm, &mut owner, report);
        }
    }
    for vm in vms.iter_mut() {
        if vm.phys_cpu_sets.is_none() && vm.phys_cpu_ids.is_none() {
            place_free(vm, &mut owner);
        }
    }
}

fn place_pinned(board: &Board, vm: &mut Vm, owner: &mut [Owner], report: &mut Report) {
    let base = KeyPath::new("base");
    let mut pcpus = Vec::new();
    for vcpu in 0..vm.cpu_num {
        let (key, wanted) = pinned_cpu(board, vm, vcpu as usize);
        let pcpu = match wanted {
            Ok(p) => p,
            Err(why) => {
                report.push(vm.src.error(&base.key(key).index(vcpu as usize), why));
                continue;
            }
        };
        if let Some((other, ov)) = &owner[pcpu as usize] {
            report.push(vm.src.error(
                &base.key(key).index(vcpu as usize),
                format!(
                    "physical CPU {pcpu} (MPIDR {:#x}) is given to vCPU {vcpu} of {} and to vCPU {ov} of {other}; a CPU runs one vCPU",
                    board.cpu_mpidrs[pcpu as usize], vm.name
                ),
            ));
            continue;
        }
        owner[pcpu as usize] = Some((vm.name.clone(), vcpu));
        pcpus.push(pcpu);
    }
    vm.pcpus = pcpus;
}

/// The CPU index a pinned vCPU asks for, and the key it was given by (the rule is
/// the shared crate's, as in the hypervisor).
fn pinned_cpu(board: &Board, vm: &Vm, vcpu: usize) -> (&'static str, Result<u32, String>) {
    vmconfig::cpus::pinned_cpu(
        vm.phys_cpu_sets.as_deref(),
        vm.phys_cpu_ids.as_deref(),
        vcpu,
        &board.cpu_mpidrs,
        &format!("board {}", board.name),
    )
    .unwrap_or(("phys_cpu_ids", Err("no entry for this vCPU".into())))
}

fn place_free(vm: &mut Vm, owner: &mut [Owner]) {
    let mut pcpus = Vec::new();
    for vcpu in 0..vm.cpu_num {
        if let Some(p) = owner.iter().position(Option::is_none) {
            owner[p] = Some((vm.name.clone(), vcpu));
            pcpus.push(p as u32);
        }
    }
    vm.pcpus = pcpus;
}
