//! The virtio block driver against a simulated virtio-mmio block device that reads
//! the driver's queue from the shared DMA memory as a device does.

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use super::blk::{VirtioBlk, MIN_DMA};
use super::{reg, status, Clock, Dma, ProbeError, Regs, F_VERSION_1, MAGIC};
use crate::drivers::block::{BlockDevice, BlockError, BLOCK};

const BASE: u64 = 0x4010_0000;

/// Memory shared by the driver (as its DMA area) and the simulated device.
#[derive(Clone)]
struct Mem(Rc<RefCell<Vec<u8>>>);

impl Mem {
    fn new(len: usize) -> Self {
        Self(Rc::new(RefCell::new(vec![0; len])))
    }
    fn at(&self, addr: u64, len: usize) -> Vec<u8> {
        let off = (addr - BASE) as usize;
        self.0.borrow()[off..off + len].to_vec()
    }
    fn put(&self, addr: u64, data: &[u8]) {
        let off = (addr - BASE) as usize;
        self.0.borrow_mut()[off..off + data.len()].copy_from_slice(data);
    }
    fn u16(&self, addr: u64) -> u16 {
        let b = self.at(addr, 2);
        u16::from_le_bytes([b[0], b[1]])
    }
}

impl Dma for Mem {
    fn addr(&self) -> u64 {
        BASE
    }
    fn size(&self) -> usize {
        self.0.borrow().len()
    }
    fn read(&self, off: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.0.borrow()[off..off + out.len()]);
    }
    fn write(&mut self, off: usize, data: &[u8]) {
        self.0.borrow_mut()[off..off + data.len()].copy_from_slice(data);
    }
}

/// How the simulated device misbehaves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// Never completes a request.
    Silent,
    /// Completes with status 1.
    IoError,
    /// Reports a head descriptor it was not given.
    WrongId,
}

/// A virtio-mmio block device with `disk` as its contents.
struct Dev {
    version: u32,
    device_id: u32,
    features: u64,
    queue_max: u32,
    fault: Fault,
    mem: Mem,
    disk: Vec<u8>,
    regs: [u32; 0x40],
    /// Requests completed, and notifications seen.
    done: Rc<Cell<u32>>,
    notified: Rc<Cell<u32>>,
    last_avail: u16,
    /// The features the driver took.
    took: u64,
}

impl Dev {
    fn new(version: u32, mem: &Mem, disk: Vec<u8>) -> Self {
        Self {
            version,
            device_id: 2,
            features: if version == 2 {
                F_VERSION_1 | 1 << 5
            } else {
                1 << 5
            },
            queue_max: 256,
            fault: Fault::None,
            mem: mem.clone(),
            disk,
            regs: [0; 0x40],
            done: Rc::new(Cell::new(0)),
            notified: Rc::new(Cell::new(0)),
            last_avail: 0,
            took: 0,
        }
    }

    fn r(&self, off: u64) -> u32 {
        self.regs[(off / 4) as usize]
    }

    /// (descriptor table, available ring, used ring) as the driver told them.
    fn rings(&self) -> (u64, u64, u64) {
        let n = u64::from(self.r(reg::QUEUE_NUM));
        if self.version == 1 {
            let desc = u64::from(self.r(reg::QUEUE_PFN)) * u64::from(self.r(reg::GUEST_PAGE_SIZE));
            let avail = desc + 16 * n;
            let align = u64::from(self.r(reg::QUEUE_ALIGN));
            let used = (avail + 6 + 2 * n).next_multiple_of(align);
            (desc, avail, used)
        } else {
            let addr = |low| u64::from(self.r(low)) | u64::from(self.r(low + 4)) << 32;
            (
                addr(reg::QUEUE_DESC_LOW),
                addr(reg::QUEUE_DRIVER_LOW),
                addr(reg::QUEUE_DEVICE_LOW),
            )
        }
    }

    fn desc(&self, table: u64, i: u16) -> (u64, u32, u16, u16) {
        let d = self.mem.at(table + 16 * u64::from(i), 16);
        let addr = u64::from_le_bytes(d[..8].try_into().unwrap());
        let len = u32::from_le_bytes(d[8..12].try_into().unwrap());
        let flags = u16::from_le_bytes([d[12], d[13]]);
        let next = u16::from_le_bytes([d[14], d[15]]);
        (addr, len, flags, next)
    }

    /// Serves every chain the driver made available.
    fn serve(&mut self) {
        let ready = self.r(reg::STATUS) & status::DRIVER_OK != 0;
        if !ready || self.fault == Fault::Silent {
            return;
        }
        let (desc, avail, used) = self.rings();
        let n = self.r(reg::QUEUE_NUM) as u16;
        while self.last_avail != self.mem.u16(avail + 2) {
            let head = self.mem.u16(avail + 4 + 2 * u64::from(self.last_avail % n));
            self.last_avail = self.last_avail.wrapping_add(1);
            let (h_addr, h_len, h_flags, h_next) = self.desc(desc, head);
            assert_eq!(
                (h_len, h_flags & 2),
                (16, 0),
                "header: 16 bytes, device-readable"
            );
            let hdr = self.mem.at(h_addr, 16);
            assert_eq!(&hdr[..4], &[0, 0, 0, 0], "a read request");
            let sector = u64::from_le_bytes(hdr[8..].try_into().unwrap());
            let (d_addr, d_len, d_flags, d_next) = self.desc(desc, h_next);
            assert_eq!(d_flags & 3, 3, "data: device-writable, chained");
            let (s_addr, s_len, s_flags, _) = self.desc(desc, d_next);
            assert_eq!(
                (s_len, s_flags & 3),
                (1, 2),
                "status: one writable byte, last"
            );
            let from = sector as usize * BLOCK;
            let data = self.disk[from..from + d_len as usize].to_vec();
            self.mem.put(d_addr, &data);
            let st = if self.fault == Fault::IoError { 1 } else { 0 };
            self.mem.put(s_addr, &[st]);
            let id = if self.fault == Fault::WrongId {
                u32::from(head) + 1
            } else {
                u32::from(head)
            };
            let used_idx = self.mem.u16(used + 2);
            let slot = used + 4 + 8 * u64::from(used_idx % n);
            let mut e = id.to_le_bytes().to_vec();
            e.extend((d_len + 1).to_le_bytes());
            self.mem.put(slot, &e);
            self.mem
                .put(used + 2, &used_idx.wrapping_add(1).to_le_bytes());
            self.regs[(reg::INTERRUPT_STATUS / 4) as usize] |= 1;
            self.done.set(self.done.get() + 1);
        }
    }
}

impl Regs for Dev {
    fn read(&self, off: u64) -> u32 {
        match off {
            reg::MAGIC => MAGIC,
            reg::VERSION => self.version,
            reg::DEVICE_ID => self.device_id,
            reg::DEVICE_FEATURES => {
                (self.features >> (32 * self.r(reg::DEVICE_FEATURES_SEL))) as u32
            }
            reg::QUEUE_NUM_MAX => self.queue_max,
            reg::CONFIG => (self.disk.len() / BLOCK) as u32,
            o if o == reg::CONFIG + 4 => ((self.disk.len() / BLOCK) as u64 >> 32) as u32,
            o => self.r(o),
        }
    }

    fn write(&mut self, off: u64, v: u32) {
        match off {
            reg::QUEUE_NOTIFY => {
                self.notified.set(self.notified.get() + 1);
                self.serve();
            }
            reg::INTERRUPT_ACK => self.regs[(reg::INTERRUPT_STATUS / 4) as usize] &= !v,
            reg::STATUS => {
                // FEATURES_OK sticks only when the driver took no feature the
                // device lacks.
                let mut v = v;
                if v & status::FEATURES_OK != 0 && self.took & !self.features != 0 {
                    v &= !status::FEATURES_OK;
                }
                self.regs[(off / 4) as usize] = v;
            }
            reg::DRIVER_FEATURES => {
                let shift = 32 * self.r(reg::DRIVER_FEATURES_SEL);
                self.took = self.took & !(0xffff_ffff << shift) | u64::from(v) << shift;
            }
            o => self.regs[(o / 4) as usize] = v,
        }
    }
}

/// A clock that moves 1 ms each time it is read.
struct Ticks(Cell<u64>);

impl Clock for Ticks {
    fn now_us(&self) -> u64 {
        self.0.set(self.0.get() + 1000);
        self.0.get()
    }
}

/// A disk of `blocks` blocks, each byte a function of its position.
fn disk(blocks: usize) -> Vec<u8> {
    (0..blocks * BLOCK)
        .map(|i| (i * 7 + i / BLOCK) as u8)
        .collect()
}

fn probe(dev: Dev, mem: &Mem) -> Result<VirtioBlk<Dev, Mem, Ticks>, ProbeError> {
    VirtioBlk::probe(dev, mem.clone(), Ticks(Cell::new(0)))
}

/// A DMA area with room for 8 blocks of data.
fn mem() -> Mem {
    Mem::new(MIN_DMA + 7 * BLOCK)
}

#[test]
fn legacy_and_modern_devices_read_what_the_disk_holds() {
    for version in [1, 2] {
        let m = mem();
        let dev = Dev::new(version, &m, disk(64));
        let done = dev.done.clone();
        let mut blk = probe(dev, &m).unwrap_or_else(|e| panic!("version {version}: {e}"));
        assert_eq!(blk.version(), version);
        assert_eq!(blk.blocks(), 64);
        // 21 blocks from block 3: three requests through the 8-block bounce buffer.
        let mut buf = vec![0u8; 21 * BLOCK];
        blk.read(3, &mut buf).unwrap();
        assert_eq!(buf, disk(64)[3 * BLOCK..24 * BLOCK], "version {version}");
        assert_eq!(done.get(), 3);
        // Many more requests than descriptors: the rings wrap.
        for lba in 0..40 {
            let mut one = [0u8; BLOCK];
            blk.read(lba, &mut one).unwrap();
            assert_eq!(one[..], disk(64)[lba as usize * BLOCK..][..BLOCK]);
        }
        assert_eq!(done.get(), 43);
    }
}

#[test]
fn the_last_block_reads_and_one_past_it_is_refused_without_a_request() {
    let m = mem();
    let dev = Dev::new(2, &m, disk(16));
    let notified = dev.notified.clone();
    let mut blk = probe(dev, &m).unwrap();
    let mut one = [0u8; BLOCK];
    blk.read(15, &mut one).unwrap();
    assert_eq!(notified.get(), 1);
    assert_eq!(
        blk.read(16, &mut one),
        Err(BlockError::OutOfRange { lba: 16, blocks: 1 })
    );
    assert_eq!(
        blk.read(u64::MAX, &mut one),
        Err(BlockError::OutOfRange {
            lba: u64::MAX,
            blocks: 1
        })
    );
    let mut odd = [0u8; 100];
    assert!(matches!(
        blk.read(0, &mut odd),
        Err(BlockError::OutOfRange { .. })
    ));
    assert_eq!(notified.get(), 1, "no request for a refused read");
}

#[test]
fn transports_that_are_not_a_usable_block_device_are_named() {
    let m = mem();
    let mut empty = Dev::new(1, &m, disk(4));
    empty.device_id = 0;
    assert_eq!(probe(empty, &m).err(), Some(ProbeError::Empty));
    let mut net = Dev::new(2, &m, disk(4));
    net.device_id = 1;
    assert_eq!(probe(net, &m).err(), Some(ProbeError::OtherDevice(1)));
    let mut v3 = Dev::new(2, &m, disk(4));
    v3.version = 3;
    assert_eq!(probe(v3, &m).err(), Some(ProbeError::UnknownVersion(3)));
    let mut tiny = Dev::new(2, &m, disk(4));
    tiny.queue_max = 2;
    assert_eq!(probe(tiny, &m).err(), Some(ProbeError::NoQueue(2)));
    let small = Mem::new(MIN_DMA - 1);
    let dev = Dev::new(2, &small, disk(4));
    assert_eq!(probe(dev, &small).err(), Some(ProbeError::DmaTooSmall));
}

#[test]
fn a_modern_device_without_version_1_is_refused_and_marked_failed() {
    struct Spy(Dev, Rc<Cell<u32>>);
    impl Regs for Spy {
        fn read(&self, off: u64) -> u32 {
            self.0.read(off)
        }
        fn write(&mut self, off: u64, v: u32) {
            if off == reg::STATUS {
                self.1.set(v);
            }
            self.0.write(off, v)
        }
    }
    let m = mem();
    let mut dev = Dev::new(2, &m, disk(4));
    dev.features = 1 << 5;
    let last = Rc::new(Cell::new(0));
    let got = VirtioBlk::probe(Spy(dev, last.clone()), m.clone(), Ticks(Cell::new(0)));
    assert_eq!(got.err(), Some(ProbeError::FeaturesRefused));
    assert_ne!(last.get() & status::FAILED, 0);
}

#[test]
fn a_read_the_device_fails_or_garbles_is_an_error() {
    let m = mem();
    let mut dev = Dev::new(1, &m, disk(8));
    dev.fault = Fault::IoError;
    let mut blk = probe(dev, &m).unwrap();
    let mut one = [0u8; BLOCK];
    assert_eq!(blk.read(0, &mut one), Err(BlockError::Io));
    let m = mem();
    let mut dev = Dev::new(2, &m, disk(8));
    dev.fault = Fault::WrongId;
    let mut blk = probe(dev, &m).unwrap();
    assert!(matches!(
        blk.read(0, &mut one),
        Err(BlockError::Protocol(_))
    ));
}

#[test]
fn a_silent_device_times_out_and_is_not_asked_again() {
    let m = mem();
    let mut dev = Dev::new(2, &m, disk(8));
    dev.fault = Fault::Silent;
    let notified = dev.notified.clone();
    let mut blk = probe(dev, &m).unwrap();
    let mut one = [0u8; BLOCK];
    assert_eq!(blk.read(0, &mut one), Err(BlockError::Timeout));
    assert_eq!(blk.read(1, &mut one), Err(BlockError::Timeout));
    assert_eq!(notified.get(), 1);
}
