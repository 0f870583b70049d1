//! A boxed slice held by a bare pointer: 8 bytes instead of the 16 of a `Box<[T]>`, for
//! slices whose owner already knows their length (a patient's measured metrics are told
//! by a bit mask, a ring's words by a size byte). The owner keeps the length and hands
//! it back to read the slice or to free it.

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
}
