//! A boxed slice held by a bare pointer: 8 bytes instead of the 16 of a `Box<[T]>`, for
//! slices whose owner already knows their length (a patient's measured metrics are told
//! by a bit mask, a ring's words by a size byte). The owner keeps the length and hands
//! it back to read the slice or to free it. [`ThinPair`] holds two arrays so, in one
//! allocation.

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

    /// The elements.
    ///
    /// # Safety
    /// `len` is the length of the slice this was made from.
    #[inline]
    pub unsafe fn slice(&self, len: usize) -> &[T] {
        // SAFETY: `ptr` came from a boxed slice of `len` elements that this owns.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), len) }
    }

    /// The elements, to change.
    ///
    /// # Safety
    /// As for [`Thin::slice`].
    #[inline]
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

/// Two arrays in one allocation, the `A`s then the `B`s, by their address alone: one
/// pointer and one allocation where two `Box<[_]>` take four words and two allocations
/// (and two of the allocator's size classes, each rounded up). Owns its elements but
/// does not drop or free them when dropped: the owner keeps both lengths and gives them
/// back with [`ThinPair::into_vecs`].
pub struct ThinPair<A, B> {
    ptr: NonNull<u8>,
    owns: PhantomData<Owned<A, B>>,
}

/// What a [`ThinPair`] owns, as far as drop checking and auto traits are concerned.
type Owned<A, B> = (Box<[A]>, Box<[B]>);

// SAFETY: a `ThinPair` owns its elements alone, as two boxed slices would.
unsafe impl<A: Send, B: Send> Send for ThinPair<A, B> {}
// SAFETY: as above; a shared `ThinPair` only gives out shared slices.
unsafe impl<A: Sync, B: Sync> Sync for ThinPair<A, B> {}

impl<A, B> Default for ThinPair<A, B> {
    /// No elements (and no allocation).
    fn default() -> ThinPair<A, B> {
        ThinPair {
            ptr: Self::dangling(),
            owns: PhantomData,
        }
    }
}

impl<A, B> ThinPair<A, B> {
    /// The block for `a` and `b` elements, and where the `B`s start in it.
    fn layout(a: usize, b: usize) -> (Layout, usize) {
        let array = |n, l: Result<Layout, _>| l.unwrap_or_else(|_| panic!("{n} elements fit"));
        let (layout, offset) = array(a, Layout::array::<A>(a))
            .extend(array(b, Layout::array::<B>(b)))
            .expect("two arrays that fit one block");
        (layout.pad_to_align(), offset)
    }

    /// Where the `B`s start after `a` elements (as [`ThinPair::layout`] has it, without
    /// the checks: the block exists, so it fit).
    #[inline]
    fn offset(a: usize) -> usize {
        (a * size_of::<A>()).next_multiple_of(align_of::<B>())
    }

    /// An address aligned for both, for no elements.
    fn dangling() -> NonNull<u8> {
        NonNull::new(std::ptr::without_provenance_mut(
            align_of::<A>().max(align_of::<B>()),
        ))
        .expect("an alignment is not zero")
    }

    /// Takes the elements of `a` and `b`; their lengths are the caller's to keep.
    pub fn new(mut a: Vec<A>, mut b: Vec<B>) -> ThinPair<A, B> {
        let (layout, offset) = Self::layout(a.len(), b.len());
        if layout.size() == 0 {
            return ThinPair::default();
        }
        // SAFETY: the layout's size is not zero.
        let block = unsafe { std::alloc::alloc(layout) };
        let ptr = NonNull::new(block).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        // SAFETY: the block has room for `a.len()` `A`s at 0 and `b.len()` `B`s at
        // `offset`, each aligned; the elements are moved (bitwise copied, then the vectors
        // forget them and free only their buffers).
        unsafe {
            std::ptr::copy_nonoverlapping(a.as_ptr(), block.cast::<A>(), a.len());
            std::ptr::copy_nonoverlapping(b.as_ptr(), block.add(offset).cast::<B>(), b.len());
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
        // at all, the dangling address plus 0, aligned for both).
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

    /// Both arrays again, as vectors (to drop them, or to rebuild the block); the block
    /// is freed.
    ///
    /// # Safety
    /// As for [`ThinPair::second`].
    pub unsafe fn into_vecs(self, a: usize, b: usize) -> (Vec<A>, Vec<B>) {
        let (layout, offset) = Self::layout(a, b);
        let (mut va, mut vb) = (Vec::with_capacity(a), Vec::with_capacity(b));
        if layout.size() == 0 {
            return (va, vb);
        }
        // SAFETY: the block holds `a` `A`s at 0 and `b` `B`s at `offset`, which are moved
        // out (bitwise copied into the vectors, which own them from here); then the block
        // is freed with the layout it was allocated with.
        unsafe {
            let block = self.ptr.as_ptr();
            std::ptr::copy_nonoverlapping(block.cast::<A>(), va.as_mut_ptr(), a);
            std::ptr::copy_nonoverlapping(block.add(offset).cast::<B>(), vb.as_mut_ptr(), b);
            va.set_len(a);
            vb.set_len(b);
            std::alloc::dealloc(block, layout);
        }
        (va, vb)
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
    fn a_thin_pair_is_one_pointer_and_gives_back_both_arrays() {
        assert_eq!(std::mem::size_of::<ThinPair<String, u64>>(), 8);
        // An odd-sized first array: the second is aligned after it.
        let firsts: Vec<[u8; 3]> = vec![[1, 2, 3], [4, 5, 6], [7, 8, 9]];
        let seconds: Vec<String> = ["a", "b"].map(String::from).into();
        let mut pair = ThinPair::new(firsts.clone(), seconds);
        // SAFETY: the lengths it was made with.
        let (a, b) = unsafe {
            pair.first_mut(3)[2][0] = 70;
            pair.second_mut(3, 2)[1].push('!');
            assert_eq!(pair.first(3)[..2], firsts[..2]);
            assert_eq!(pair.second(3, 2), ["a", "b!"]);
            assert_eq!(
                pair.second(3, 2).as_ptr() as usize % align_of::<String>(),
                0
            );
            pair.into_vecs(3, 2)
        };
        assert_eq!(a, [[1, 2, 3], [4, 5, 6], [70, 8, 9]]);
        assert_eq!(b, ["a", "b!"]);
        // SAFETY: lengths 0 (nothing was allocated), then one array empty.
        unsafe {
            let none = ThinPair::<String, u64>::default();
            assert!(none.first(0).is_empty() && none.second(0, 0).is_empty());
            assert_eq!(none.into_vecs(0, 0), (vec![], vec![]));
            let only_b = ThinPair::<String, u64>::new(vec![], vec![5, 6]);
            assert_eq!(only_b.second(0, 2), [5, 6]);
            assert_eq!(only_b.into_vecs(0, 2), (vec![], vec![5, 6]));
        }
    }
}
