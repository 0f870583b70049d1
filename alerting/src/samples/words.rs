//! A ring's words in eight bytes aligned to four: two in place, or a pointer to a power
//! of two of them on the heap. A boxed slice would take sixteen (a pointer and a length)
//! aligned to eight, and a ring is in every metric a patient measures; how many words
//! there are is one byte ([`Size`]) that the ring keeps where its other fields leave
//! room. Aligned to four, the ring's 4-byte fields pack after the words with no padding,
//! and a metric's whole state fits in 40 bytes.
//!
//! [`Buf`] owns words and their size together and is safe to use; [`Words`] is the bare
//! eight bytes a ring stores, whose owner keeps the size beside it and hands both back
//! (see [`Words::slice`], [`Words::into_buf`]).

use std::mem::ManuallyDrop;

use crate::thin::Thin;

/// Words held in place: as many as the pointer takes.
pub const INLINE: usize = 2;

/// How many words: `1 << log2`. Two are in place; a heap holds at least four.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(u8);

impl Size {
    pub const INLINE: Size = Size(INLINE.trailing_zeros() as u8);

    #[inline]
    pub fn len(self) -> usize {
        1 << self.0
    }

    /// log2 of the words: 1 (in place) to 16.
    #[inline]
    pub const fn log2(self) -> u8 {
        self.0
    }

    #[inline]
    pub const fn from_log2(log2: u8) -> Size {
        Size(log2)
    }

    #[inline]
    fn on_heap(self) -> bool {
        self.len() > INLINE
    }
}

/// Two words in place, or [`Size::len`] words on the heap, owned by whoever holds this.
/// Which one is told by the size kept beside it. Packed to an alignment of four: the
/// pointer is only ever copied out whole ([`Words::ptr`]), never borrowed in place.
#[repr(C, packed(4))]
pub union Words {
    inline: [u32; INLINE],
    heap: ManuallyDrop<Thin<u32>>,
}

impl Default for Words {
    fn default() -> Words {
        Words {
            inline: [0; INLINE],
        }
    }
}

impl Words {
    /// The heap's words.
    ///
    /// # Safety
    /// The words are on the heap (the size kept beside them says so).
    #[inline]
    unsafe fn ptr(&self) -> *mut u32 {
        // SAFETY: on the heap, `heap` is the field that was written; it may sit at an
        // address aligned to four only, so it is read as such, by value.
        unsafe { std::ptr::read_unaligned(std::ptr::addr_of!(self.heap)).as_ptr() }
    }

    /// The words.
    ///
    /// # Safety
    /// `size` is the size of the [`Buf`] these words came from ([`Buf::into_parts`]).
    #[inline]
    pub unsafe fn slice(&self, size: Size) -> &[u32] {
        if size.on_heap() {
            // SAFETY: on the heap, `heap` points to `size.len()` words (the caller passes
            // the size they were allocated with) that this owns while borrowed.
            unsafe { std::slice::from_raw_parts(self.ptr(), size.len()) }
        } else {
            // SAFETY: in place, `inline` is the field that was written.
            unsafe { &self.inline }
        }
    }

    /// The words, to write.
    ///
    /// # Safety
    /// As for [`Words::slice`].
    #[inline]
    pub unsafe fn slice_mut(&mut self, size: Size) -> &mut [u32] {
        if size.on_heap() {
            // SAFETY: as in `slice`; `&mut self` makes the access unique.
            unsafe { std::slice::from_raw_parts_mut(self.ptr(), size.len()) }
        } else {
            // SAFETY: as in `slice`.
            unsafe { &mut self.inline }
        }
    }

    /// The words and their size as a [`Buf`] again, which frees them when dropped.
    ///
    /// # Safety
    /// As for [`Words::slice`]; these words are not used again (the buffer owns them).
    pub unsafe fn into_buf(self, size: Size) -> Buf {
        Buf { words: self, size }
    }
}

/// Words and their size: zeroed, read and written as a slice, freed when dropped.
pub struct Buf {
    words: Words,
    size: Size,
}

impl Buf {
    /// Zeroed words for at least `slots` slots of `1 << shift` words: a power of two of
    /// slots, in place if they fit, else at least 4 slots on the heap.
    pub fn zeroed(slots: usize, shift: u32) -> Buf {
        let slots = slots.max(1).next_power_of_two();
        if slots << shift <= INLINE {
            return Buf {
                words: Words::default(),
                size: Size::INLINE,
            };
        }
        let len = slots.max(4) << shift;
        Buf::heap(vec![0; len].into_boxed_slice())
    }

    /// A copy of `words` (a power of two of them).
    pub fn copy_of(words: &[u32]) -> Buf {
        debug_assert!(words.len().is_power_of_two());
        if words.len() <= INLINE {
            let mut inline = [0; INLINE];
            inline[..words.len()].copy_from_slice(words);
            return Buf {
                words: Words { inline },
                size: Size::INLINE,
            };
        }
        Buf::heap(words.into())
    }

    fn heap(words: Box<[u32]>) -> Buf {
        let len = words.len();
        assert!(len.is_power_of_two() && len > INLINE);
        Buf {
            words: Words {
                heap: ManuallyDrop::new(Thin::new(words)),
            },
            size: Size(len.trailing_zeros() as u8),
        }
    }

    /// The bare words and their size, for a ring to keep apart; [`Words::into_buf`] gives
    /// the buffer back.
    pub fn into_parts(self) -> (Words, Size) {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is not dropped, so the words are moved out exactly once.
        (unsafe { std::ptr::read(&this.words) }, this.size)
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        if self.size.on_heap() {
            // SAFETY: on the heap, `heap` holds `size.len()` words (`Buf::heap`) that this
            // buffer owns; it is dropping, so they are taken once (read by value: the
            // field may be aligned to four only).
            let heap = unsafe { std::ptr::read_unaligned(std::ptr::addr_of!(self.words.heap)) };
            // SAFETY: as above.
            drop(unsafe { ManuallyDrop::into_inner(heap).into_box(self.size.len()) });
        }
    }
}

impl std::ops::Deref for Buf {
    type Target = [u32];

    #[inline]
    fn deref(&self) -> &[u32] {
        // SAFETY: a buffer's words and size belong together.
        unsafe { self.words.slice(self.size) }
    }
}

impl std::ops::DerefMut for Buf {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u32] {
        // SAFETY: as for `deref`.
        unsafe { self.words.slice_mut(self.size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_take_eight_bytes_aligned_to_four_and_a_size_one() {
        assert_eq!(std::mem::size_of::<Words>(), 8);
        assert_eq!(std::mem::align_of::<Words>(), 4);
        assert_eq!(std::mem::size_of::<Size>(), 1);
    }

    #[test]
    fn buffers_hold_a_power_of_two_of_zeroed_words_in_place_or_on_the_heap() {
        for (slots, shift, len) in [(0, 0, 2), (1, 0, 2), (2, 0, 2), (3, 0, 4), (1, 1, 2)] {
            assert_eq!(Buf::zeroed(slots, shift).len(), len, "{slots} << {shift}");
        }
        assert_eq!(Buf::zeroed(1, 2).len(), 16, "four wide slots at least");
        assert_eq!(Buf::zeroed(5, 1).len(), 16);
        let mut b = Buf::zeroed(1000, 0);
        assert_eq!(b.len(), 1024);
        assert!(b.iter().all(|&w| w == 0));
        b[1023] = 7;
        b[0] = 3;
        let copy = Buf::copy_of(&b);
        assert_eq!(&copy[..], &b[..]);
        b[0] = 4;
        assert_eq!(copy[0], 3, "a copy has words of its own");
    }

    #[test]
    fn parts_give_back_the_same_words() {
        for slots in [1, 2, 3, 64] {
            let mut b = Buf::zeroed(slots, 0);
            let last = b.len() - 1;
            b[last] = 42;
            let (mut words, size) = b.into_parts();
            // SAFETY: the size they came with.
            let again = unsafe {
                words.slice_mut(size)[0] = 9;
                assert_eq!(words.slice(size)[last], 42);
                words.into_buf(size)
            };
            assert_eq!((again[0], again[last], again.len()), (9, 42, last + 1));
        }
    }
}
