//! Tests of the guest-image store, registry, fetching, unpacking and initramfs.
