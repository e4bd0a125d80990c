//! Boot: the Multiboot v1 header, the 32-bit entry of the boot vCPU (page tables,
//! long mode, GDT, stack), the real-mode trampoline secondary vCPUs start in after
//! INIT-SIPI-SIPI, and the per-vCPU stacks.
//!
//! The image is linked at 1 MiB and carries a Multiboot header with the a.out kludge
//! (flag bit 16: header, load, load end, bss end and entry addresses), so QEMU
//! `-kernel` loads the ELF64 as it lies and the hypervisor loads it by the same
//! header. Both enter `_start` in 32-bit protected mode, paging off, flat segments,
//! interrupts off, EAX = 0x2BADB002 and EBX = the Multiboot information. The entry
//! zeroes .bss, identity-maps the first 4 GiB with 2 MiB pages (the top 1 GiB, where
//! the local APIC and the I/O APIC are, uncached), enters long mode and calls
//! [`primary_entry`] on stack slot 0.
//!
//! A secondary vCPU starts in real mode at CS = [`TRAMPOLINE`] >> 4, IP = 0 (SIPI
//! vector `TRAMPOLINE >> 12`). [`start_secondary`] copies the trampoline there (it is
//! assembled to run at that address) and fills in its data: the page-table root, the
//! stack top and the stack slot. It goes to protected mode, then long mode, and calls
//! [`secondary_entry`] with the slot.

use core::arch::global_asm;
use core::cell::UnsafeCell;

use super::{firmware, idt};
use crate::platform::MAX_CPUS;
use crate::shared::Shared;

/// Bytes of stack per vCPU (a power of two).
const STACK_SHIFT: usize = 15;
const STACK_SIZE: usize = 1 << STACK_SHIFT;
/// Where the trampoline of secondary vCPUs runs (below 1 MiB, page aligned).
pub const TRAMPOLINE: usize = 0x8000;
/// The SIPI vector that starts a vCPU at [`TRAMPOLINE`].
pub const SIPI_VECTOR: u8 = (TRAMPOLINE >> 12) as u8;

#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);

/// The stacks of all vCPUs, slot `n` for the vCPU at position `n`.
#[repr(C, align(16))]
struct Stacks(UnsafeCell<[Stack; MAX_CPUS]>);

// SAFETY: Rust code never accesses the stacks through this static; each vCPU's entry
// code takes the address of its own slot and uses it as its stack pointer.
unsafe impl Sync for Stacks {}

static STACKS: Stacks = Stacks(UnsafeCell::new(
    [const { Stack([0; STACK_SIZE]) }; MAX_CPUS],
));

/// PML4, one PDPT, four page directories of 2 MiB pages: the first 4 GiB.
#[repr(C, align(4096))]
struct PageTables(UnsafeCell<[[u64; 512]; 6]>);

// SAFETY: only the 32-bit entry code writes the tables (before anything else runs);
// afterwards the CPU alone reads them.
unsafe impl Sync for PageTables {}

static PAGE_TABLES: PageTables = PageTables(UnsafeCell::new([[0; 512]; 6]));

/// EAX and EBX at entry: the Multiboot magic and information address.
static BOOT_MAGIC: Shared = Shared::new(0);
static BOOT_INFO: Shared = Shared::new(0);

extern "C" {
    static tg_trampoline_start: u8;
    static tg_trampoline_end: u8;
    static tg_trampoline_cr3: u8;
    static tg_trampoline_stack: u8;
    static tg_trampoline_slot: u8;
}

/// The page-table root every vCPU uses.
fn page_table_root() -> u64 {
    PAGE_TABLES.0.get() as u64
}

/// Copies the trampoline to [`TRAMPOLINE`] and sets it up to start the vCPU at stack
/// slot `slot` (`0 < slot < MAX_CPUS`). False for a slot without a stack.
pub fn prepare_secondary(slot: u64) -> bool {
    if slot == 0 || slot >= MAX_CPUS as u64 {
        return false;
    }
    let start = &raw const tg_trampoline_start as usize;
    let end = &raw const tg_trampoline_end as usize;
    let at = |sym: *const u8| TRAMPOLINE + (sym as usize - start);
    let stack_top = STACKS.0.get() as u64 + (slot + 1) * STACK_SIZE as u64;
    // SAFETY: the trampoline page lies in the VM's RAM below 1 MiB, which nothing of
    // the guest uses (the image starts at 1 MiB, the Multiboot information is not read
    // after boot); the copy is the trampoline's own bytes, and the data words are
    // inside it (8-byte aligned by the assembly).
    unsafe {
        core::ptr::copy_nonoverlapping(start as *const u8, TRAMPOLINE as *mut u8, end - start);
        (at(&raw const tg_trampoline_cr3) as *mut u64).write_volatile(page_table_root());
        (at(&raw const tg_trampoline_stack) as *mut u64).write_volatile(stack_top);
        (at(&raw const tg_trampoline_slot) as *mut u64).write_volatile(slot);
    }
    super::barrier();
    true
}

extern "C" fn primary_entry() -> ! {
    idt::load();
    let platform = super::multiboot::read(BOOT_MAGIC.get() as u32, BOOT_INFO.get() as usize);
    crate::guest::run(platform)
}

extern "C" fn secondary_entry(slot: u64) -> ! {
    idt::load();
    firmware::secondary_started();
    crate::guest::secondary_main(slot as usize)
}

global_asm!(
    r#"
    .section .text.multiboot, "ax"
    .balign 4
tg_multiboot_header:
    .long 0x1BADB002
    .long 0x00010002                // memory information, a.out kludge
    .long -(0x1BADB002 + 0x00010002)
    .long tg_multiboot_header       // header_addr
    .long __image_start             // load_addr
    .long __load_end                // load_end_addr
    .long __image_end               // bss_end_addr
    .long _start                    // entry_addr

    .section .text.boot, "ax"
    .code32
    .balign 16
    .global _start
_start:
    cli
    cld
    mov     %eax, %esi              // Multiboot magic (EBX: information)
    // Zero .bss (page tables, stacks, statics).
    mov     $__bss_start, %edi
    mov     $__bss_end, %ecx
    sub     %edi, %ecx
    xor     %eax, %eax
    rep stosb
    mov     %esi, {magic}
    mov     %ebx, {info}

    // PML4[0] -> PDPT; PDPT[0..4] -> PD0..PD3; PDn: 2 MiB pages.
    mov     ${tables}, %edi
    lea     0x1003(%edi), %eax
    mov     %eax, (%edi)
    lea     0x1000(%edi), %edi
    lea     0x1003(%edi), %eax
    mov     $4, %ecx
1:  mov     %eax, (%edi)
    add     $0x1000, %eax
    add     $8, %edi
    loop    1b
    mov     ${tables}, %edi
    add     $0x2000, %edi
    mov     $0x83, %eax             // present, writable, 2 MiB page
    mov     $2048, %ecx
2:  mov     %eax, (%edi)
    cmp     $0xC0000000, %eax
    jb      3f
    orl     $0x18, (%edi)           // the top 1 GiB (APIC windows): uncached
3:  add     $0x200000, %eax
    add     $8, %edi
    loop    2b

    mov     ${tables}, %eax
    mov     %eax, %cr3
    mov     %cr4, %eax
    or      $0x20, %eax             // PAE
    mov     %eax, %cr4
    mov     $0xC0000080, %ecx       // EFER
    rdmsr
    or      $0x100, %eax            // LME
    wrmsr
    mov     %cr0, %eax
    or      $0x80000001, %eax       // PG, PE
    mov     %eax, %cr0
    lgdt    tg_gdt_pointer
    ljmp    $0x08, $4f

    .code64
4:  mov     $0x10, %ax
    mov     %ax, %ds
    mov     %ax, %es
    mov     %ax, %ss
    xor     %eax, %eax
    mov     %ax, %fs
    mov     %ax, %gs
    lea     {stacks}(%rip), %rsp
    add     ${stack_size}, %rsp
    xor     %ebp, %ebp
    call    {primary}
5:  cli
    hlt
    jmp     5b

    .section .rodata
    .balign 16
tg_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF        // 0x08: 64-bit code
    .quad 0x00CF92000000FFFF        // 0x10: data
    .quad 0x00CF9A000000FFFF        // 0x18: 32-bit code
tg_gdt_pointer:
    .word 31
    .quad tg_gdt

    // The trampoline: assembled to run at {trampoline}, copied there.
    .section .text, "ax"
    .balign 16
    .global tg_trampoline_start
    .global tg_trampoline_end
    .global tg_trampoline_cr3
    .global tg_trampoline_stack
    .global tg_trampoline_slot
    .code16
tg_trampoline_start:
    cli
    cld
    xor     %ax, %ax
    mov     %ax, %ds
    lgdtl   (tg_trampoline_gdt_pointer - tg_trampoline_start + {trampoline})
    mov     %cr0, %eax
    or      $1, %eax
    mov     %eax, %cr0
    ljmpl   $0x18, $(6f - tg_trampoline_start + {trampoline})
    .code32
6:  mov     $0x10, %ax
    mov     %ax, %ds
    mov     %ax, %es
    mov     %ax, %ss
    mov     (tg_trampoline_cr3 - tg_trampoline_start + {trampoline}), %eax
    mov     %eax, %cr3
    mov     %cr4, %eax
    or      $0x20, %eax
    mov     %eax, %cr4
    mov     $0xC0000080, %ecx
    rdmsr
    or      $0x100, %eax
    wrmsr
    mov     %cr0, %eax
    or      $0x80000001, %eax
    mov     %eax, %cr0
    ljmp    $0x08, $(7f - tg_trampoline_start + {trampoline})
    .code64
7:  mov     $0x10, %ax
    mov     %ax, %ds
    mov     %ax, %es
    mov     %ax, %ss
    xor     %eax, %eax
    mov     %ax, %fs
    mov     %ax, %gs
    mov     (tg_trampoline_stack - tg_trampoline_start + {trampoline}), %rsp
    mov     (tg_trampoline_slot - tg_trampoline_start + {trampoline}), %rdi
    xor     %ebp, %ebp
    movabs  ${secondary}, %rax
    call    *%rax
8:  cli
    hlt
    jmp     8b
    // The image's GDT (its linear address is below 4 GiB), through a pointer the
    // real-mode code can reach.
    .balign 8
tg_trampoline_gdt_pointer:
    .word 31
    .long tg_gdt
    .balign 8
tg_trampoline_cr3:
    .quad 0
tg_trampoline_stack:
    .quad 0
tg_trampoline_slot:
    .quad 0
tg_trampoline_end:
"#,
    magic = sym BOOT_MAGIC,
    info = sym BOOT_INFO,
    tables = sym PAGE_TABLES,
    stacks = sym STACKS,
    stack_size = const STACK_SIZE,
    primary = sym primary_entry,
    secondary = sym secondary_entry,
    trampoline = const TRAMPOLINE,
    options(att_syntax)
);
