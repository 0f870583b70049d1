//! A boxed slice held by a bare pointer: 8 bytes instead of the 16 of a `Box<[T]>`, for
//! slices whose owner already knows their length (a patient's measured metrics are told
//! by a bit mask, a ring's words by a size byte). The owner keeps the length and hands
//! it back to read the slice or to free it. [`ThinPair`] holds two arrays and a value
//! so, in one allocation.

use std::alloc::Layout;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// The elements of a `Box<[T]>` by their address alone. Owns them (nothing else points
/// to them) but does not free them when dropped: the owner gives the slice back with
/// [`Thin::into_box`] and the length it was made with.
pub struct Thin<T> {
    ptr: NonNull<T>,
    owns: PhantomData<Box<[T]>>,
}

// SAFETY: a `Thin` owns its elements alone, as the `Box<[T]>` it came from did.
unsafe impl<T: Send> Send for Thin<T> {}
// SAFETY: as above; a shared `Thin` only gives out shared slices.
unsafe impl<T: Sync> Sync for Thin<T> {}

impl<T> Thin<T> {
    /// Takes the elements of `slice`; its length is the caller's to keep.
    pub fn new(slice: Box<[T]>) -> Thin<T> {
        let ptr = NonNull::new(Box::into_raw(slice).cast::<T>()).expect("a box is not null");
        Thin {
            ptr,
            owns: PhantomData,
        }
    }

    /// The first element's address (for an owner that cannot borrow this in place).
    #[inline]
    pub fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    /// The elements (a ring's words read them through [`Thin::as_ptr`]: they may sit
    /// where a `Thin` cannot be borrowed).
    ///
    /// # Safety
    /// `len` is the length of the slice this was made from.
    #[cfg(test)]
    pub unsafe fn slice(&self, len: usize) -> &[T] {
        // SAFETY: `ptr` came from a boxed slice of `len` elements that this owns.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), len) }
    }

    /// The elements, to change.
    ///
    /// # Safety
    /// As for [`Thin::slice`].
    #[cfg(test)]
    pub unsafe fn slice_mut(&mut self, len: usize) -> &mut [T] {
        // SAFETY: as in `slice`; `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), len) }
    }

    /// The boxed slice again (to free it, or to rebuild it).
    ///
    /// # Safety
    /// As for [`Thin::slice`].
    pub unsafe fn into_box(self, len: usize) -> Box<[T]> {
        let slice = std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), len);
        // SAFETY: `slice` is the pointer and length `Box::into_raw` gave in `new`.
        unsafe { Box::from_raw(slice) }
    }
}

impl<T> Default for Thin<T> {
    /// No elements (and no allocation).
    fn default() -> Thin<T> {
        Thin::new(Box::new([]))
    }
}

/// Two arrays and a value in one allocation, the `A`s, then the `B`s, then the `T`, by
/// their address alone: one pointer and one allocation where two `Box<[_]>` and a `T`
/// beside them take four words more and two allocations (and two of the allocator's size
/// classes, each rounded up). Owns its elements but does not drop or free them when
/// dropped: the owner keeps both lengths and gives them back with
/// [`ThinPair::into_parts`]. With no elements and a zero-sized `T` nothing is allocated.
pub struct ThinPair<A, B, T = ()> {
    ptr: NonNull<u8>,
    owns: PhantomData<Owned<A, B, T>>,
}

/// What a [`ThinPair`] owns, as far as drop checking and auto traits are concerned.
type Owned<A, B, T> = (Box<[A]>, Box<[B]>, Box<T>);

// SAFETY: a `ThinPair` owns its elements alone, as two boxed slices and a box would.
unsafe impl<A: Send, B: Send, T: Send> Send for ThinPair<A, B, T> {}
// SAFETY: as above; a shared `ThinPair` only gives out shared references.
unsafe impl<A: Sync, B: Sync, T: Sync> Sync for ThinPair<A, B, T> {}

impl<A, B, T> ThinPair<A, B, T> {
    /// The block for `a` and `b` elements and a `T`, where the `B`s start in it and
    /// where the `T` does.
    fn layout(a: usize, b: usize) -> (Layout, usize, usize) {
        let array = |n, l: Result<Layout, _>| l.unwrap_or_else(|_| panic!("{n} elements fit"));
        let (layout, offset) = array(a, Layout::array::<A>(a))
            .extend(array(b, Layout::array::<B>(b)))
            .expect("two arrays that fit one block");
        let (layout, tail) = layout
            .extend(Layout::new::<T>())
            .expect("two arrays and a value that fit one block");
        (layout.pad_to_align(), offset, tail)
    }

    /// Where the `B`s start after `a` elements (as [`ThinPair::layout`] has it, without
    /// the checks: the block exists, so it fit).
    #[inline]
    fn offset(a: usize) -> usize {
        (a * size_of::<A>()).next_multiple_of(align_of::<B>())
    }

    /// Where the `T` starts after `a` and `b` elements (as [`ThinPair::layout`] has it).
    #[inline]
    fn tail_offset(a: usize, b: usize) -> usize {
        (Self::offset(a) + b * size_of::<B>()).next_multiple_of(align_of::<T>())
    }

    /// An address aligned for all three, for no elements and a zero-sized `T`.
    fn dangling() -> NonNull<u8> {
        NonNull::new(std::ptr::without_provenance_mut(
            align_of::<A>().max(align_of::<B>()).max(align_of::<T>()),
        ))
        .expect("an alignment is not zero")
    }

    /// A handle to nothing, to stand in for a block moved out until another is put in its
    /// place: no lengths go with it, so nothing may be read through it.
    pub fn unset() -> ThinPair<A, B, T> {
        ThinPair {
            ptr: Self::dangling(),
            owns: PhantomData,
        }
    }

    /// Whether this is [`ThinPair::unset`] (or holds nothing at all: no elements and a
    /// zero-sized `T`): nothing to read, nothing to free.
    pub fn is_unset(&self) -> bool {
        self.ptr == Self::dangling()
    }

    /// Takes the elements of `a` and `b`, and `tail`; the lengths are the caller's to keep.
    pub fn new(mut a: Vec<A>, mut b: Vec<B>, tail: T) -> ThinPair<A, B, T> {
        let (layout, offset, tail_at) = Self::layout(a.len(), b.len());
        let ptr = if layout.size() == 0 {
            Self::dangling()
        } else {
            // SAFETY: the layout's size is not zero.
            let block = unsafe { std::alloc::alloc(layout) };
            NonNull::new(block).unwrap_or_else(|| std::alloc::handle_alloc_error(layout))
        };
        // SAFETY: the block has room for `a.len()` `A`s at 0, `b.len()` `B`s at `offset`
        // and a `T` at `tail_at`, each aligned (with no room at all, every one of them is
        // zero-sized, and the dangling address is aligned for all three); the elements are
        // moved (bitwise copied, then the vectors forget them and free only their buffers).
        unsafe {
            let block = ptr.as_ptr();
            std::ptr::copy_nonoverlapping(a.as_ptr(), block.cast::<A>(), a.len());
            std::ptr::copy_nonoverlapping(b.as_ptr(), block.add(offset).cast::<B>(), b.len());
            std::ptr::write(block.add(tail_at).cast::<T>(), tail);
            a.set_len(0);
            b.set_len(0);
        }
        ThinPair {
            ptr,
            owns: PhantomData,
        }
    }

    /// The `A`s.
    ///
    /// # Safety
    /// `a` is the length of the `A`s this was made with.
    #[inline]
    pub unsafe fn first(&self, a: usize) -> &[A] {
        // SAFETY: `a` `A`s start at the block's start (aligned for `A`, or dangling and
        // aligned when there are none).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<A>(), a) }
    }

    /// The `A`s, to change.
    ///
    /// # Safety
    /// As for [`ThinPair::first`].
    #[inline]
    pub unsafe fn first_mut(&mut self, a: usize) -> &mut [A] {
        // SAFETY: as in `first`; `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast::<A>(), a) }
    }

    /// The `B`s.
    ///
    /// # Safety
    /// `a` and `b` are the lengths this was made with.
    #[inline]
    pub unsafe fn second(&self, a: usize, b: usize) -> &[B] {
        // SAFETY: `b` `B`s start `offset(a)` bytes in (aligned for `B`; with no elements
        // at all, the dangling address plus 0, aligned for all three).
        unsafe {
            let at = self.ptr.as_ptr().add(Self::offset(a)).cast::<B>();
            std::slice::from_raw_parts(at, b)
        }
    }

    /// The `B`s, to change.
    ///
    /// # Safety
    /// As for [`ThinPair::second`].
    #[inline]
    pub unsafe fn second_mut(&mut self, a: usize, b: usize) -> &mut [B] {
        // SAFETY: as in `second`; `&mut self` makes the access unique.
        unsafe {
            let at = self.ptr.as_ptr().add(Self::offset(a)).cast::<B>();
            std::slice::from_raw_parts_mut(at, b)
        }
    }

    /// The `T`.
    ///
    /// # Safety
    /// As for [`ThinPair::second`].
    #[inline]
    pub unsafe fn tail(&self, a: usize, b: usize) -> &T {
        // SAFETY: the `T` is at `tail_offset(a, b)`, aligned, initialised by `new`.
        unsafe { &*self.ptr.as_ptr().add(Self::tail_offset(a, b)).cast::<T>() }
    }

    /// Both arrays again, as vectors, and the `T` (to drop them, or to rebuild the
    /// block); the block is freed.
    ///
    /// # Safety
    /// As for [`ThinPair::second`].
    pub unsafe fn into_parts(self, a: usize, b: usize) -> (Vec<A>, Vec<B>, T) {
        let (layout, offset, tail_at) = Self::layout(a, b);
        let (mut va, mut vb) = (Vec::with_capacity(a), Vec::with_capacity(b));
        // SAFETY: the block holds `a` `A`s at 0, `b` `B`s at `offset` and a `T` at
        // `tail_at`, which are moved out (bitwise copied into the vectors, which own them
        // from here, and read out); then the block is freed with the layout it was
        // allocated with, if it was.
        unsafe {
            let block = self.ptr.as_ptr();
            std::ptr::copy_nonoverlapping(block.cast::<A>(), va.as_mut_ptr(), a);
            std::ptr::copy_nonoverlapping(block.add(offset).cast::<B>(), vb.as_mut_ptr(), b);
            va.set_len(a);
            vb.set_len(b);
            let tail = std::ptr::read(block.add(tail_at).cast::<T>());
            if layout.size() != 0 {
                std::alloc::dealloc(block, layout);
            }
            (va, vb, tail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thin_slice_is_one_pointer_and_gives_back_what_it_took() {
        assert_eq!(std::mem::size_of::<Thin<String>>(), 8);
        assert_eq!(std::mem::size_of::<Option<Thin<String>>>(), 8);
        let strings: Box<[String]> = ["a", "b", "c"].map(String::from).into();
        let mut thin = Thin::new(strings);
        // SAFETY: the length it was made with.
        let back = unsafe {
            thin.slice_mut(3)[1].push('!');
            assert_eq!(thin.slice(3), ["a", "b!", "c"]);
            thin.into_box(3)
        };
        assert_eq!(&*back, ["a", "b!", "c"]);
        // SAFETY: empty, length 0.
        assert!(unsafe { Thin::<String>::default().into_box(0) }.is_empty());
    }

    #[test]
    fn a_thin_pair_is_one_pointer_and_gives_back_both_arrays_and_its_tail() {
        assert_eq!(std::mem::size_of::<ThinPair<String, u64>>(), 8);
        // An odd-sized first array: the second is aligned after it.
        let firsts: Vec<[u8; 3]> = vec![[1, 2, 3], [4, 5, 6], [7, 8, 9]];
        let seconds: Vec<String> = ["a", "b"].map(String::from).into();
        let mut pair = ThinPair::new(firsts.clone(), seconds, String::from("tail"));
        // SAFETY: the lengths it was made with.
        let (a, b, tail) = unsafe {
            pair.first_mut(3)[2][0] = 70;
            pair.second_mut(3, 2)[1].push('!');
            assert_eq!(pair.first(3)[..2], firsts[..2]);
            assert_eq!(pair.second(3, 2), ["a", "b!"]);
            assert_eq!(
                pair.second(3, 2).as_ptr() as usize % align_of::<String>(),
                0
            );
            assert_eq!(pair.tail(3, 2), "tail");
            pair.into_parts(3, 2)
        };
        assert_eq!(a, [[1, 2, 3], [4, 5, 6], [70, 8, 9]]);
        assert_eq!(b, ["a", "b!"]);
        assert_eq!(tail, "tail");
        // SAFETY: lengths 0 (nothing was allocated), then one array empty, then a tail
        // alone, after an odd-sized array.
        unsafe {
            let none = ThinPair::<String, u64>::new(vec![], vec![], ());
            assert!(none.first(0).is_empty() && none.second(0, 0).is_empty());
            assert_eq!(none.into_parts(0, 0), (vec![], vec![], ()));
            let only_b = ThinPair::<String, u64>::new(vec![], vec![5, 6], ());
            assert_eq!(only_b.second(0, 2), [5, 6]);
            assert_eq!(only_b.into_parts(0, 2), (vec![], vec![5, 6], ()));
            let only_tail = ThinPair::<u8, u8, u64>::new(vec![], vec![], 7);
            assert_eq!(*only_tail.tail(0, 0), 7);
            assert_eq!(only_tail.into_parts(0, 0), (vec![], vec![], 7));
            let odd = ThinPair::<u8, [u8; 3], u64>::new(vec![1], vec![[2; 3]], 9);
            assert_eq!(odd.tail(1, 1) as *const u64 as usize % align_of::<u64>(), 0);
            assert_eq!(odd.into_parts(1, 1), (vec![1], vec![[2; 3]], 9));
        }
    }
}
