//! Boot entry and the CPU's own tables. QEMU `-kernel` (and any PVH loader) starts
//! the image at `hv_pvh_start32`, named by the `XEN_ELFNOTE_PHYS32_ENTRY` note, in
//! 32-bit protected mode with paging off and EBX = the PVH start info. The boot CPU
//! zeroes .bss, builds the identity map of the first 4 GiB (2 MiB pages; the top
//! GiB, where the APICs and other devices are, uncached), enters long mode on the
//! hypervisor's GDT and calls [`primary_main`](crate::boot::primary_main) on stack
//! slot 0.
//!
//! Every stack slot has an unmapped 4 KiB guard page below its stack ([`guard_stacks`]
//! maps the stacks' 2 MiB with 4 KiB pages and leaves the guards out), and every CPU a
//! TSS whose IST1 is an emergency stack the exception handlers run on (`idt`), so an
//! overflow is reported, not silent corruption.
//!
//! Other CPUs are started with INIT-SIPI-SIPI ([`start_ap`]) at a real-mode trampoline
//! copied to [`TRAMPOLINE`] (below 1 MiB, which the hypervisor never hands out): it
//! goes through protected mode into long mode on the boot page tables, then to
//! `hv_ap_long`, which takes the stack slot the boot CPU left in `hv_ap_slot`.

use core::sync::atomic::{AtomicU64, Ordering};

pub const STACK_SIZE: usize = 64 << 10;
const GUARD: usize = 4 << 10;
/// A stack slot: its guard page, then its stack.
const SLOT: usize = GUARD + STACK_SIZE;
pub const MAX_CPUS: usize = crate::firmware::MAX_CPUS;
/// Physical address the secondary CPUs' real-mode start code is copied to.
pub const TRAMPOLINE: u64 = 0x8000;
/// Bytes of each CPU's emergency stack (exception handlers).
const EMERGENCY: usize = 16 << 10;

/// The unmapped gap below every stack, in the ELF for `cargo xtask build`'s frame
/// check. One page is enough here: x86_64-unknown-none has inline stack probes, so
/// no allocation moves `rsp` more than a page past memory it touched.
#[no_mangle]
#[used]
pub static HV_STACK_GAP: u64 = GUARD as u64;

/// The stack slots, 2 MiB aligned so that one page table maps them all.
#[repr(C, align(0x200000))]
pub struct Stacks([[u8; SLOT]; MAX_CPUS]);
const _: () = assert!(core::mem::size_of::<Stacks>() <= 0x200000);

#[no_mangle]
static mut hv_stacks: Stacks = Stacks([[0; SLOT]; MAX_CPUS]);

#[repr(C, align(16))]
pub struct Emergency(pub [[u8; EMERGENCY]; MAX_CPUS]);
pub static mut EMERGENCY_STACKS: Emergency = Emergency([[0; EMERGENCY]; MAX_CPUS]);

#[repr(C, align(4096))]
struct Table([u64; 512]);

#[no_mangle]
static mut hv_pml4: Table = Table([0; 512]);
#[no_mangle]
static mut hv_pdpt: Table = Table([0; 512]);
/// Four page directories: the first 4 GiB in 2 MiB pages.
#[no_mangle]
static mut hv_pd: [Table; 4] = [const { Table([0; 512]) }; 4];
/// The stacks' 2 MiB in 4 KiB pages, guard pages left out.
static mut STACK_PT: Table = Table([0; 512]);

/// The stack slot a starting secondary CPU takes; the CPU sets [`AP_ARRIVED`].
#[no_mangle]
static hv_ap_slot: AtomicU64 = AtomicU64::new(0);
static AP_ARRIVED: AtomicU64 = AtomicU64::new(0);

/// Entries of the GDT: null, 64-bit code (0x08), data (0x10), then one 16-byte TSS
/// descriptor per stack slot.
pub const GDT_ENTRIES: usize = 3 + 2 * MAX_CPUS;
pub const CODE_SEL: u16 = 0x08;
/// Selector of the TSS of stack slot `slot`.
pub fn tss_selector(slot: usize) -> u16 {
    (3 + 2 * slot as u16) * 8
}

extern "C" {
    static mut hv_gdt: [u64; GDT_ENTRIES];
    static hv_ap_start: u8;
    static hv_ap_end: u8;
}

/// The GDT, for `idt` to fill in the TSS descriptors.
pub fn gdt() -> *mut [u64; GDT_ENTRIES] {
    &raw mut hv_gdt
}

/// Whether `addr` lies in a guard page; the slot whose stack ran into it.
pub fn guard_slot(addr: u64) -> Option<usize> {
    let base = (&raw const hv_stacks) as u64;
    let off = addr.checked_sub(base)? as usize;
    let slot = off / SLOT;
    (slot < MAX_CPUS && off % SLOT < GUARD).then_some(slot)
}

/// The stack slot of the running CPU (from its stack pointer).
pub fn current_slot() -> usize {
    let base = (&raw const hv_stacks) as u64;
    let sp: u64;
    // SAFETY: reads the stack pointer only.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack)) };
    (sp.saturating_sub(base) as usize / SLOT).min(MAX_CPUS - 1)
}

/// Top of the emergency stack of `slot`.
pub fn emergency_top(slot: usize) -> u64 {
    let base = (&raw const EMERGENCY_STACKS) as u64;
    base + ((slot.min(MAX_CPUS - 1) + 1) * EMERGENCY) as u64
}

/// Maps the stacks' 2 MiB with 4 KiB pages, the guard page of every slot left out.
/// Boot CPU, before any other CPU runs.
fn guard_stacks() {
    let base = (&raw const hv_stacks) as u64;
    // SAFETY: only the boot CPU runs; the tables are this module's, and the new map
    // gives every page but the guards the address it had.
    unsafe {
        let pt: *mut Table = &raw mut STACK_PT;
        for i in 0..512 {
            let off = i * 4096;
            let in_guard = off < MAX_CPUS * SLOT && off % SLOT < GUARD;
            (*pt).0[i] = if in_guard {
                0
            } else {
                (base + off as u64) | 0x3
            };
        }
        let index = (base >> 21) as usize;
        let pd: *mut [Table; 4] = &raw mut hv_pd;
        (*pd)[index / 512].0[index % 512] = pt as u64 | 0x3;
        core::arch::asm!("mov {0}, cr3", "mov cr3, {0}", out(reg) _, options(nostack));
    }
}

/// Identity-maps `[4 GiB, end)` with 1 GiB pages (the boot map covers the first
/// 4 GiB); returns how far the map now reaches. Only up to 512 GiB (one PDPT), and
/// only when the CPU has 1 GiB pages. Boot CPU, before any other CPU runs.
pub fn map_high(end: u64) -> u64 {
    const GIB: u64 = 1 << 30;
    let has_1g = super::port::cpuid(0x8000_0001, 0)[3] & (1 << 26) != 0;
    if !has_1g {
        return 4 * GIB;
    }
    let end = end.min(512 * GIB);
    // SAFETY: only the boot CPU runs; entries 4.. of the PDPT are unused until now.
    unsafe {
        let pdpt: *mut Table = &raw mut hv_pdpt;
        let mut i = 4;
        while (i as u64) * GIB < end {
            (*pdpt).0[i] = (i as u64 * GIB) | 0x83;
            i += 1;
        }
        core::arch::asm!("mov {0}, cr3", "mov cr3, {0}", out(reg) _, options(nostack));
        end.next_multiple_of(GIB).max(4 * GIB)
    }
}

/// Copies the real-mode start code to [`TRAMPOLINE`].
fn install_trampoline() {
    // SAFETY: the code between the two linker-visible labels is read-only data of the
    // image; the page at TRAMPOLINE (below 1 MiB) is never handed out (see
    // `firmware::pvh`) and no CPU runs there while it is written.
    unsafe {
        let start = &raw const hv_ap_start;
        let len = (&raw const hv_ap_end) as usize - start as usize;
        core::ptr::copy_nonoverlapping(start, TRAMPOLINE as *mut u8, len);
    }
}

/// Starts the CPU with APIC id `apic_id` in stack slot `slot` (INIT, then start-up
/// IPIs until it arrives); Err(-1) when it does not arrive within about 100 ms.
pub fn start_ap(apic_id: u64, slot: usize, tsc_hz: u64) -> Result<(), i64> {
    let wait = |us: u64| {
        let end = super::port::rdtsc() + tsc_hz / 1_000_000 * us;
        while super::port::rdtsc() < end {
            core::hint::spin_loop();
        }
    };
    install_trampoline();
    AP_ARRIVED.store(0, Ordering::SeqCst);
    hv_ap_slot.store(slot as u64, Ordering::SeqCst);
    super::lapic::init_ipi(apic_id);
    wait(10_000);
    for _ in 0..2 {
        super::lapic::startup_ipi(apic_id, (TRAMPOLINE >> 12) as u8);
        for _ in 0..500 {
            if AP_ARRIVED.load(Ordering::SeqCst) != 0 {
                return Ok(());
            }
            wait(100);
        }
    }
    Err(-1)
}

core::arch::global_asm!(
    r#"
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 4                     // name size ("Xen\0")
    .long 4                     // descriptor size
    .long 18                    // XEN_ELFNOTE_PHYS32_ENTRY
    .asciz "Xen"
    .long hv_pvh_start32
    .balign 4
    .popsection

    .pushsection .data
    .balign 16
    .global hv_gdt
hv_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    // 0x08: 64-bit code
    .quad 0x00cf92000000ffff    // 0x10: data
    .fill {tss_words}, 8, 0     // TSS descriptors, filled by idt::init_cpu
hv_gdt_ptr:
    .word {gdt_limit}
    .quad hv_gdt
    .popsection

    .section .text.boot, "ax"
    .code32
    .global hv_pvh_start32
hv_pvh_start32:
    cli
    cld
    movl    %ebx, %ebp              // the PVH start info
    // zero .bss (stacks and page tables live there)
    movl    $__bss_start, %edi
    movl    $__bss_end, %ecx
    subl    %edi, %ecx
    xorl    %eax, %eax
    rep stosb
    // PML4[0] -> PDPT; PDPT[0..4] -> the four PDs
    movl    $hv_pdpt, %eax
    orl     $3, %eax
    movl    %eax, hv_pml4
    movl    $hv_pd, %eax
    orl     $3, %eax
    movl    $hv_pdpt, %edi
    movl    $4, %ecx
1:  movl    %eax, (%edi)
    addl    $4096, %eax
    addl    $8, %edi
    loop    1b
    // PD entries: 2 MiB pages, present + writable + large; the top GiB uncached
    movl    $hv_pd, %edi
    xorl    %eax, %eax
    xorl    %ecx, %ecx
2:  movl    %eax, %edx
    orl     $0x83, %edx
    cmpl    $1536, %ecx
    jb      3f
    orl     $0x18, %edx
3:  movl    %edx, (%edi)
    movl    $0, 4(%edi)
    addl    $0x200000, %eax
    addl    $8, %edi
    incl    %ecx
    cmpl    $2048, %ecx
    jb      2b
    movl    $hv_stacks + {slot}, %esp   // stack slot 0, for the call
    call    hv_enter_long_mode32
    ljmp    $0x08, $.Lstart64

    // The hypervisor's GDT, PAE, CR3 = hv_pml4, EFER.LME + NXE, paging + write
    // protect; CR4.OSFXSR with CR0.EM clear so that `world::clear_fp_state` can
    // clear a guest's SSE registers (the hypervisor's own code is soft-float and
    // uses none); a far jump to selector 0x08 then enters 64-bit code. Boot CPU and
    // trampoline alike.
    .global hv_enter_long_mode32
hv_enter_long_mode32:
    lgdt    hv_gdt_ptr
    movl    %cr4, %eax
    orl     $0x220, %eax
    movl    %eax, %cr4
    movl    $hv_pml4, %eax
    movl    %eax, %cr3
    movl    $0xc0000080, %ecx
    rdmsr
    orl     $0x900, %eax
    wrmsr
    movl    %cr0, %eax
    orl     $0x80010001, %eax
    andl    $0xfffffffb, %eax
    movl    %eax, %cr0
    ret

    .code64
.Lstart64:
    movw    $0x10, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    movw    %ax, %fs
    movw    %ax, %gs
    movabsq $hv_stacks + {slot}, %rsp
    movl    %ebp, %edi
    call    {primary}
4:  cli
    hlt
    jmp     4b

    // A secondary CPU, in long mode on the boot page tables and the hypervisor's GDT
    // (from the trampoline; its data segments hold the same flat descriptor).
    .global hv_ap_long
hv_ap_long:
    movq    hv_ap_slot(%rip), %rdi
    leaq    hv_stacks(%rip), %rsp
    leaq    1(%rdi), %rax
    imulq   ${slot}, %rax
    addq    %rax, %rsp
    call    {secondary}
    jmp     4b

    // The real-mode start code, copied to {tramp}: CS = {tramp} >> 4, IP = 0.
    .pushsection .rodata
    .balign 16
    .global hv_ap_start
    .global hv_ap_end
    .code16
hv_ap_start:
    cli
    cld
    xorw    %ax, %ax
    movw    %ax, %ds
    lgdtl   {tramp} + (.Lap_gdt_ptr - hv_ap_start)
    movl    %cr0, %eax
    orl     $1, %eax
    movl    %eax, %cr0
    ljmpl   $0x08, ${tramp} + (.Lap_pm - hv_ap_start)
    .code32
.Lap_pm:
    movw    $0x10, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    movl    ${tramp} + 0xff0, %esp  // the rest of the trampoline's page
    movl    $hv_enter_long_mode32, %eax
    call    *%eax
    ljmp    $0x08, $hv_ap_long
    .balign 8
.Lap_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff    // 0x08: 32-bit code
    .quad 0x00cf92000000ffff    // 0x10: data
.Lap_gdt_ptr:
    .word 23
    .long {tramp} + (.Lap_gdt - hv_ap_start)
hv_ap_end:
    .code64
    .popsection

    // Exception and interrupt entry: every stub pushes an error code (0 where the
    // CPU pushes none) and its vector, then the registers; `trap` gets the frame.
    .text
hv_isr_common:
    pushq   %rax
    pushq   %rbx
    pushq   %rcx
    pushq   %rdx
    pushq   %rsi
    pushq   %rdi
    pushq   %rbp
    pushq   %r8
    pushq   %r9
    pushq   %r10
    pushq   %r11
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    movq    %rsp, %rdi
    call    {trap}
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %r11
    popq    %r10
    popq    %r9
    popq    %r8
    popq    %rbp
    popq    %rdi
    popq    %rsi
    popq    %rdx
    popq    %rcx
    popq    %rbx
    popq    %rax
    addq    $16, %rsp
    iretq
hv_isr_0:
    pushq $0
    pushq $0
    jmp hv_isr_common
hv_isr_1:
    pushq $0
    pushq $1
    jmp hv_isr_common
hv_isr_2:
    pushq $0
    pushq $2
    jmp hv_isr_common
hv_isr_3:
    pushq $0
    pushq $3
    jmp hv_isr_common
hv_isr_4:
    pushq $0
    pushq $4
    jmp hv_isr_common
hv_isr_5:
    pushq $0
    pushq $5
    jmp hv_isr_common
hv_isr_6:
    pushq $0
    pushq $6
    jmp hv_isr_common
hv_isr_7:
    pushq $0
    pushq $7
    jmp hv_isr_common
hv_isr_8:
    pushq $8
    jmp hv_isr_common
hv_isr_9:
    pushq $0
    pushq $9
    jmp hv_isr_common
hv_isr_10:
    pushq $10
    jmp hv_isr_common
hv_isr_11:
    pushq $11
    jmp hv_isr_common
hv_isr_12:
    pushq $12
    jmp hv_isr_common
hv_isr_13:
    pushq $13
    jmp hv_isr_common
hv_isr_14:
    pushq $14
    jmp hv_isr_common
hv_isr_15:
    pushq $0
    pushq $15
    jmp hv_isr_common
hv_isr_16:
    pushq $0
    pushq $16
    jmp hv_isr_common
hv_isr_17:
    pushq $17
    jmp hv_isr_common
hv_isr_18:
    pushq $0
    pushq $18
    jmp hv_isr_common
hv_isr_19:
    pushq $0
    pushq $19
    jmp hv_isr_common
hv_isr_20:
    pushq $0
    pushq $20
    jmp hv_isr_common
hv_isr_21:
    pushq $21
    jmp hv_isr_common
hv_isr_22:
    pushq $0
    pushq $22
    jmp hv_isr_common
hv_isr_23:
    pushq $0
    pushq $23
    jmp hv_isr_common
hv_isr_24:
    pushq $0
    pushq $24
    jmp hv_isr_common
hv_isr_25:
    pushq $0
    pushq $25
    jmp hv_isr_common
hv_isr_26:
    pushq $0
    pushq $26
    jmp hv_isr_common
hv_isr_27:
    pushq $0
    pushq $27
    jmp hv_isr_common
hv_isr_28:
    pushq $0
    pushq $28
    jmp hv_isr_common
hv_isr_29:
    pushq $29
    jmp hv_isr_common
hv_isr_30:
    pushq $30
    jmp hv_isr_common
hv_isr_31:
    pushq $0
    pushq $31
    jmp hv_isr_common
hv_isr_240:
    pushq $0
    pushq $240
    jmp hv_isr_common
hv_isr_255:
    pushq $0
    pushq $255
    jmp hv_isr_common
    .pushsection .rodata
    .balign 8
    .global hv_isr_table
hv_isr_table:
    .quad 0, hv_isr_0
    .quad 1, hv_isr_1
    .quad 2, hv_isr_2
    .quad 3, hv_isr_3
    .quad 4, hv_isr_4
    .quad 5, hv_isr_5
    .quad 6, hv_isr_6
    .quad 7, hv_isr_7
    .quad 8, hv_isr_8
    .quad 9, hv_isr_9
    .quad 10, hv_isr_10
    .quad 11, hv_isr_11
    .quad 12, hv_isr_12
    .quad 13, hv_isr_13
    .quad 14, hv_isr_14
    .quad 15, hv_isr_15
    .quad 16, hv_isr_16
    .quad 17, hv_isr_17
    .quad 18, hv_isr_18
    .quad 19, hv_isr_19
    .quad 20, hv_isr_20
    .quad 21, hv_isr_21
    .quad 22, hv_isr_22
    .quad 23, hv_isr_23
    .quad 24, hv_isr_24
    .quad 25, hv_isr_25
    .quad 26, hv_isr_26
    .quad 27, hv_isr_27
    .quad 28, hv_isr_28
    .quad 29, hv_isr_29
    .quad 30, hv_isr_30
    .quad 31, hv_isr_31
    .quad 240, hv_isr_240
    .quad 255, hv_isr_255
    .popsection

"#,
    tss_words = const 2 * MAX_CPUS,
    gdt_limit = const GDT_ENTRIES * 8 - 1,
    slot = const SLOT,
    tramp = const TRAMPOLINE,
    primary = sym primary_entry,
    secondary = sym secondary_entry,
    trap = sym super::idt::trap,
    options(att_syntax)
);

extern "C" fn primary_entry(start_info: u32) -> ! {
    guard_stacks();
    super::idt::init_cpu(0);
    crate::boot::primary_main(start_info as u64)
}

extern "C" fn secondary_entry(slot: u64) -> ! {
    let slot = slot as usize;
    super::idt::init_cpu(slot);
    AP_ARRIVED.store(1, Ordering::SeqCst);
    crate::boot::secondary_main(slot)
}
