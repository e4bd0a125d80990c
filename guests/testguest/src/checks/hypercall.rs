//! hypercall: the project hypercall HV_INFO answers on the boot vCPU with status 0,
//! the ABI magic and vCPU index 0 (and prints the VM id), and answered every secondary
//! that the smp check started with the same VM id and that vCPU's own index.

use crate::arch::{self, HvInfo, HV_INFO_MAGIC, HV_INFO_OK, NOT_SUPPORTED};
use crate::console::println;
use crate::platform::Platform;
use crate::why::{why, CheckResult};

use super::smp::MAILBOXES;

/// Status and magic of an HV_INFO answer.
fn check_answer(info: &HvInfo) -> CheckResult {
    let [status, magic, _, _] = *info;
    if status == NOT_SUPPORTED {
        return Err(why!("HV_INFO not supported (no hypervisor?)"));
    }
    if status != HV_INFO_OK {
        return Err(why!("HV_INFO returned status {status:#x}"));
    }
    if magic != HV_INFO_MAGIC {
        return Err(why!(
            "HV_INFO returned magic {magic:#x}, expected {HV_INFO_MAGIC:#x}"
        ));
    }
    Ok(())
}

/// Runs the check.
pub fn run(platform: Option<&Platform>) -> CheckResult {
    let info = arch::firmware::hv_info()
        .map_err(|_| why!("HV_INFO not supported (no hypervisor?): the call was undefined"))?;
    check_answer(&info)?;
    let [_, _, vm, index] = info;
    println!("testguest: VM id {vm}");
    if index != 0 {
        return Err(why!("HV_INFO on the boot vCPU reports vCPU index {index}"));
    }
    let Some(platform) = platform else {
        return Ok(());
    };
    let secondaries = MAILBOXES
        .iter()
        .enumerate()
        .take(platform.cpus().len())
        .skip(1);
    for (slot, mailbox) in secondaries {
        let Some(theirs) = mailbox.hv_info() else {
            continue;
        };
        check_answer(&theirs).map_err(|why| why!("vCPU {slot}: {why}"))?;
        let [_, _, their_vm, their_index] = theirs;
        if their_vm != vm || their_index != slot as u64 {
            return Err(why!(
                "vCPU {slot} got VM id {their_vm} and vCPU index {their_index}, expected {vm} and {slot}"
            ));
        }
    }
    Ok(())
}
