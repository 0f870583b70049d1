//! A hint that memory is about to be read: the CPU starts loading its cache line and goes
//! on without waiting, so that the misses of several windows overlap with other work
//! instead of stalling it. A reading of one patient touches a few windows spread over a
//! state that, at 100 000 patients, is rarely in cache.

/// Asks the CPU to bring the cache line holding `value` into its caches; does nothing on
/// targets without a stable prefetch instruction.
#[inline(always)]
pub fn prefetch<T: ?Sized>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it never faults, whatever the address, and changes no
    // state the program can observe; `value` is a valid reference anyway. SSE, which it
    // needs, is part of every x86_64 target.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            (value as *const T).cast(),
        )
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// [`prefetch`] of an address that may not hold a value (a hash table's control bytes
/// where a key's probe starts): the instruction never faults, so any address will do.
#[inline(always)]
pub fn prefetch_address(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as for `prefetch`: a hint that never faults and changes nothing observable.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(address.cast())
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// [`prefetch`] of every cache line `value` spans.
#[inline(always)]
pub fn prefetch_lines<T: ?Sized>(value: &T) {
    let start = (value as *const T).cast::<u8>();
    prefetch_range(start, start.wrapping_add(std::mem::size_of_val(value)));
}

/// [`prefetch`] of every cache line from `start` up to `end` (excluded).
#[inline(always)]
pub fn prefetch_range(start: *const u8, end: *const u8) {
    let mut line = start.wrapping_sub(start as usize % 64);
    while line < end {
        prefetch_address(line);
        line = line.wrapping_add(64);
    }
}
