//! The binaries' allocator: the first allocations of a process come from
//! one zeroed static region, handed out in order, and everything after it
//! from `A` (mimalloc). A command lives for a few milliseconds and allocates
//! some hundreds of KiB, most of which lives until it exits: packed in order
//! they touch as few pages as they fill, where a general allocator spreads
//! them over a page per size class and builds free lists through each (see
//! `cargo xtask bench --only startup`). Memory freed in the region is reused
//! only when it is the last block (a temporary, a growing buffer); a long
//! run (the metrics server, a batch) fills it once and then lives on `A`,
//! which is why `A` stays: musl's allocator alone made a batch of 6,000
//! commands five times slower.

use std::{
    alloc::{GlobalAlloc, Layout},
    cell::UnsafeCell,
    sync::atomic::{AtomicUsize, Ordering},
};

/// The region's size: a query or device list uses about a quarter of it;
/// untouched pages cost nothing, and a long run holds at most this much
/// more than it would on `A` alone.
const REGION: usize = 1 << 20;

#[repr(C, align(4096))]
struct Region(UnsafeCell<[u8; REGION]>);

// SAFETY: blocks of the region are handed to one owner each, by the atomic
// cursor.
unsafe impl Sync for Region {}

/// A static region of 1 MiB, then `A`.
pub struct StartupHeap<A> {
    region: Region,
    /// Offset of the first free byte of the region.
    next: AtomicUsize,
    /// The end of the furthest block ever handed out: the region is zero
    /// beyond it.
    high: AtomicUsize,
    fallback: A,
}

impl<A> StartupHeap<A> {
    /// The allocator, for a `#[global_allocator]` static.
    pub const fn new(fallback: A) -> Self {
        Self {
            region: Region(UnsafeCell::new([0; REGION])),
            next: AtomicUsize::new(0),
            high: AtomicUsize::new(0),
            fallback,
        }
    }

    fn base(&self) -> usize {
        self.region.0.get() as usize
    }

    fn offset_of(&self, ptr: *mut u8) -> Option<usize> {
        let off = (ptr as usize).wrapping_sub(self.base());
        (off < REGION).then_some(off)
    }

    /// A block of the region and how many of its first bytes may have been
    /// used before (the rest is zero), or None when it has no room.
    fn take(&self, layout: Layout) -> Option<(*mut u8, usize)> {
        let mut next = self.next.load(Ordering::Acquire);
        loop {
            let start = (self.base() + next).checked_next_multiple_of(layout.align())? - self.base();
            let end = start.checked_add(layout.size()).filter(|&e| e <= REGION)?;
            match self.next.compare_exchange_weak(next, end, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    let high = self.high.fetch_max(end, Ordering::AcqRel);
                    return Some(((self.base() + start) as *mut u8, high.clamp(start, end) - start));
                }
                Err(now) => next = now,
            }
        }
    }
}

// SAFETY: region blocks never overlap (the cursor only moves past a block
// handed out, or back over the last block when its owner frees it); the
// region is static and zeroed; everything else is `A`'s.
unsafe impl<A: GlobalAlloc> GlobalAlloc for StartupHeap<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.take(layout) {
            Some((p, _)) => p,
            // SAFETY: the caller's contract, passed on.
            None => unsafe { self.fallback.alloc(layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match self.take(layout) {
            // Only bytes used before need zeroing: a fresh page stays untouched.
            Some((p, used)) => {
                // SAFETY: the block holds at least `used` bytes.
                unsafe { std::ptr::write_bytes(p, 0, used) };
                p
            }
            // SAFETY: the caller's contract, passed on.
            None => unsafe { self.fallback.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match self.offset_of(ptr) {
            // The last block gives its room back; others stay until exit.
            Some(off) => {
                let _ = self.next.compare_exchange(off + layout.size(), off, Ordering::AcqRel, Ordering::Relaxed);
            }
            // SAFETY: not the region's, so `A`'s.
            None => unsafe { self.fallback.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(off) = self.offset_of(ptr) else {
            // SAFETY: not the region's, so `A`'s.
            return unsafe { self.fallback.realloc(ptr, layout, new_size) };
        };
        // The last block grows or shrinks in place.
        if off + new_size <= REGION
            && self
                .next
                .compare_exchange(off + layout.size(), off + new_size, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.high.fetch_max(off + new_size, Ordering::AcqRel);
            return ptr;
        }
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: align and size come from a valid layout grown to new_size,
        // as the caller's contract says.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as above.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks hold at least layout.size() bytes and are distinct.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size()) };
            // SAFETY: ptr is the caller's block of `layout`.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    #[test]
    fn blocks_are_aligned_distinct_and_the_last_one_grows_in_place() {
        static HEAP: StartupHeap<System> = StartupHeap::new(System);
        let heap = &HEAP;
        let l = |size, align| Layout::from_size_align(size, align).unwrap();
        unsafe {
            let a = heap.alloc(l(3, 1));
            let b = heap.alloc(l(16, 64));
            assert_eq!(b as usize % 64, 0);
            assert!(b as usize >= a as usize + 3);
            // b is last: it grows in place.
            assert_eq!(heap.realloc(b, l(16, 64), 4096), b);
            // a is not last: freeing it leaves the cursor where it is.
            heap.dealloc(a, l(3, 1));
            let c = heap.alloc(l(8, 8));
            assert!(c as usize >= b as usize + 4096);
            // c is last: freeing it gives its room to the next block, which
            // is zeroed when asked for zeroed.
            std::ptr::write_bytes(c, 0xff, 8);
            heap.dealloc(c, l(8, 8));
            assert_eq!(heap.alloc_zeroed(l(16, 8)), c);
            assert!(std::slice::from_raw_parts(c, 16).iter().all(|&x| x == 0));
            heap.dealloc(c, l(16, 8));
            assert_eq!(heap.alloc(l(8, 8)), c);
            // Beyond the region: the fallback.
            let big = heap.alloc(l(REGION, 8));
            assert!(heap.offset_of(big).is_none());
            heap.dealloc(big, l(REGION, 8));
            // A block that outgrows the region moves out with its bytes.
            std::ptr::write_bytes(b, 7, 4096);
            let moved = heap.realloc(b, l(4096, 64), REGION);
            assert!(heap.offset_of(moved).is_none());
            assert!(std::slice::from_raw_parts(moved, 4096).iter().all(|&x| x == 7));
            heap.dealloc(moved, l(REGION, 64));
        }
    }
}
