//! Inter-VM channels: shared regions the machine owns, not any VM. A channel is made
//! (its frames allocated and zeroed) when the first VM naming it is built, each VM
//! that maps it is one of its users, and its frames go back only when the last user
//! is destroyed: a VM that stops, restarts or is destroyed never takes the region
//! from its peers, and a restarted VM keeps it mapped as before (its second-stage
//! tables are kept across a restart). The doorbells ring through it
//! ([`crate::devices::doorbell::Peers`]).

use crate::devices::doorbell::Peers;
use crate::devices::signal::Signal;
use crate::hal::{Current, MemoryOps};
use crate::mm::frames::FrameAllocator;
use crate::spec::{ChannelSpec, VmSpec};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use spin::Mutex;

pub struct Channel {
    pub name: String,
    pub size: u64,
    /// The member VMs by name, in the order every member lists them.
    pub vms: Vec<String>,
    /// The region's host-physical base.
    pub hpa: u64,
    /// The VM that made it (named in messages when another disagrees).
    first: String,
    /// Per member: the rings waiting for it (bit i = member i rang).
    pending: Vec<AtomicU32>,
    /// Per member: its doorbell's signal, while the member's VM exists.
    signals: Vec<Mutex<Option<Signal>>>,
    /// The ids of the VMs mapping it.
    users: Mutex<Vec<u32>>,
}

impl Channel {
    /// The member number of VM `name`.
    pub fn member(&self, name: &str) -> Option<u32> {
        self.vms.iter().position(|v| v == name).map(|i| i as u32)
    }

    /// The ids of the VMs that map it now.
    pub fn users(&self) -> Vec<u32> {
        self.users.lock().clone()
    }
}

impl Peers for Channel {
    fn members(&self) -> u32 {
        self.vms.len() as u32
    }

    fn ring(&self, from: u32, mask: u32) {
        for (i, pending) in self.pending.iter().enumerate() {
            if mask & (1 << i) != 0 {
                pending.fetch_or(1 << from, Ordering::AcqRel);
                if let Some(s) = self.signals[i].lock().as_ref() {
                    s.raise();
                }
            }
        }
    }

    fn take(&self, me: u32) -> u32 {
        self.pending
            .get(me as usize)
            .map_or(0, |p| p.swap(0, Ordering::AcqRel))
    }

    fn connect(&self, me: u32, signal: Signal) {
        if let Some(s) = self.signals.get(me as usize) {
            *s.lock() = Some(signal);
        }
    }
}

/// The machine's channels.
#[derive(Default)]
pub struct Channels {
    list: Vec<Arc<Channel>>,
}

impl Channels {
    /// The channels `spec` maps, in its order, with VM `spec.id` a user of each: a
    /// channel no VM made yet is made from `frames`. Refused (nothing taken) when
    /// the VM is not on a channel's list or disagrees with its members on its size
    /// or list (`vmconfig::channel::disagreement`, the check xtask runs).
    pub fn acquire(
        &mut self,
        spec: &VmSpec,
        frames: &mut FrameAllocator,
    ) -> Result<Vec<Arc<Channel>>, String> {
        for c in spec.channels.iter() {
            self.check(spec, c)?;
        }
        let mut got = Vec::new();
        for c in spec.channels.iter() {
            match self.get_or_make(spec, c, frames) {
                Ok(ch) => {
                    ch.users.lock().push(spec.id);
                    got.push(ch);
                }
                Err(e) => {
                    self.release(spec.id, &spec.name, frames);
                    return Err(e);
                }
            }
        }
        Ok(got)
    }

    fn check(&self, spec: &VmSpec, c: &ChannelSpec) -> Result<(), String> {
        let vms: Vec<&str> = c.vms.iter().map(|v| &**v).collect();
        if !vms.contains(&&*spec.name) {
            return Err(format!(
                "channel {:?}: this VM is not on its list {vms:?}",
                c.name
            ));
        }
        if let Some(ch) = self.list.iter().find(|ch| ch.name == *c.name) {
            let theirs: Vec<&str> = ch.vms.iter().map(String::as_str).collect();
            let shown = format!("VM {:?}", ch.first);
            if let Some((_, why)) =
                vmconfig::channel::disagreement(&c.name, c.size, &vms, ch.size, &theirs, &shown)
                    .into_iter()
                    .next()
            {
                return Err(why);
            }
            if ch.users.lock().contains(&spec.id) {
                return Err(format!(
                    "channel {:?} is already mapped by VM {}",
                    c.name, spec.id
                ));
            }
        }
        Ok(())
    }

    fn get_or_make(
        &mut self,
        spec: &VmSpec,
        c: &ChannelSpec,
        frames: &mut FrameAllocator,
    ) -> Result<Arc<Channel>, String> {
        if let Some(ch) = self.list.iter().find(|ch| ch.name == *c.name) {
            return Ok(ch.clone());
        }
        let hpa = frames.alloc(c.size, 0x1000).map_err(|_| {
            format!(
                "channel {:?}: no {:#x} bytes of host RAM for its region",
                c.name, c.size
            )
        })?;
        // SAFETY: frames just allocated: nobody maps them yet.
        unsafe { Current::zero_guest_ram(hpa, c.size) };
        Current::clean_for_guest(hpa, c.size);
        let n = c.vms.len();
        let ch = Arc::new(Channel {
            name: String::from(&*c.name),
            size: c.size,
            vms: c.vms.iter().map(|v| String::from(&**v)).collect(),
            hpa,
            first: String::from(&*spec.name),
            pending: (0..n).map(|_| AtomicU32::new(0)).collect(),
            signals: (0..n).map(|_| Mutex::new(None)).collect(),
            users: Mutex::new(Vec::new()),
        });
        self.list.push(ch.clone());
        Ok(ch)
    }

    /// VM `id` (called `name`) no longer maps its channels (it was destroyed, or
    /// building it failed): its doorbell stops taking rings, and a channel it was the
    /// last user of gives its frames back.
    pub fn release(&mut self, id: u32, name: &str, frames: &mut FrameAllocator) {
        self.list.retain(|ch| {
            let mut users = ch.users.lock();
            let Some(pos) = users.iter().position(|&u| u == id) else {
                return true;
            };
            users.remove(pos);
            if let Some(me) = ch.member(name) {
                *ch.signals[me as usize].lock() = None;
                ch.pending[me as usize].store(0, Ordering::Release);
            }
            if !users.is_empty() {
                return true;
            }
            if frames.free(ch.hpa, ch.size).is_err() {
                crate::warn!("hv: channel {} region was not allocated", ch.name);
            }
            false
        });
    }

    /// The channel called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Channel>> {
        self.list.iter().find(|c| c.name == name).cloned()
    }
}
