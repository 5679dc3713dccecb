//! Buffers of the phase path kept from call to call: a training step repeats the same
//! shapes, and DCGAN's 64 → 128 forward took 8 MiB of transformed weights and 3 MiB of
//! transformed tiles per thread fresh from the allocator on every call, zero-filled (the
//! `memset` was 3% of the layer's three passes, on top of first touches). The weight
//! gradient ([`super::wgrad`]) keeps its transformed tiles and products here too.

use crate::Element;
use std::any::Any;
use std::sync::Mutex;

/// Free buffers, of any element type.
static FREE: Mutex<Vec<Box<dyn Any + Send>>> = Mutex::new(Vec::new());

/// Buffers [`FREE`] keeps: a call's taps, tiles and products plus a few per thread, for a
/// few threads, and the weight gradient's three.
const KEEP: usize = 16;

/// A buffer from [`take`]: the first `len` elements of a kept vector, every element of
/// which was written when the vector was made, so a buffer is never zero-filled again (a
/// request longer than the last one refilled what the last had truncated: in DCGAN's
/// training step, serial `memset`s the second core waited through).
pub(super) struct Buf<T> {
    v: Vec<T>,
    len: usize,
}

impl<T> std::ops::Deref for Buf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.v[..self.len]
    }
}

impl<T> std::ops::DerefMut for Buf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.v[..self.len]
    }
}

/// A buffer of `len` elements: the smallest free one that holds them (so a small request
/// does not take the weights' buffer), or a new one. A reused buffer holds its last user's
/// values: callers take it only where they write every element they later read.
pub(super) fn take<T: Element>(len: usize) -> Buf<T> {
    let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
    let best = free
        .iter()
        .enumerate()
        .filter_map(|(i, b)| b.downcast_ref::<Vec<T>>().map(|v| (i, v.len())))
        .filter(|&(_, have)| have >= len)
        .min_by_key(|&(_, have)| have)
        .map(|(i, _)| i);
    let v = match best.map(|i| free.swap_remove(i).downcast::<Vec<T>>()) {
        Some(Ok(v)) => *v,
        _ => {
            drop(free);
            vec![T::ZERO; len]
        }
    };
    Buf { v, len }
}

/// Hand `buf` back for later calls (dropped when [`KEEP`] are already free).
pub(super) fn put<T: Element>(buf: Buf<T>) {
    let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
    if free.len() < KEEP {
        free.push(Box::new(buf.v));
    }
}

/// Buffers of one length for a call's tasks, from [`take`] and back to [`put`].
pub(super) struct Scratch(pub usize);

impl Scratch {
    /// A buffer of this scratch's length.
    pub(super) fn take<T: Element>(&self) -> Buf<T> {
        take(self.0)
    }

    /// Hand `buf` back.
    pub(super) fn put<T: Element>(&self, buf: Buf<T>) {
        put(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_with_the_length_asked() {
        let mut a = take::<f32>(1000);
        assert_eq!(a.len(), 1000);
        a[999] = 3.0;
        put(a);
        // Shorter, then longer than any free one: lengths as asked either way.
        let b = take::<f32>(10);
        assert_eq!(b.len(), 10);
        let c = take::<f32>(5000);
        assert_eq!(c.len(), 5000);
        put(b);
        put(c);
        assert_eq!(take::<f64>(7).len(), 7);
    }
}
