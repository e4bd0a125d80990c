//! Memory management: physical frames, heap, guest address spaces.
