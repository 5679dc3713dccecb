//! The collectives data-parallel training needs, and the single-process communicator.

/// A group of processes that train together (an MPI communicator). Every method is a
/// collective unless said otherwise: every rank must call it, in the same order, with
/// buffers of the same length, or the job hangs.
pub trait Comm {
    /// This process's index, `0..size` (not a collective).
    fn rank(&self) -> usize;
    /// Number of processes (not a collective).
    fn size(&self) -> usize;
    /// Wait until every rank has arrived.
    fn barrier(&self);
    /// Overwrite `buf` on every rank with `root`'s.
    fn broadcast_bytes(&self, buf: &mut [u8], root: usize);
    /// Overwrite `buf` on every rank with `root`'s.
    fn broadcast_f32(&self, buf: &mut [f32], root: usize);
    /// Replace `buf` by its elementwise sum over the ranks.
    fn all_reduce_sum_f32(&self, buf: &mut [f32]);
    /// Replace `buf` by its elementwise sum over the ranks.
    fn all_reduce_sum_f64(&self, buf: &mut [f64]);
    /// Every rank's `value`, in rank order.
    fn all_gather_u64(&self, value: u64) -> Vec<u64>;
    /// A second handle on this group for summing gradient buckets on another thread (the
    /// overlapped all-reduce), on a communicator of its own so its collectives never mix
    /// with this one's. A collective (every rank creates it at the same point); `None`
    /// where the MPI library allows no calls from other threads (then nothing overlaps).
    fn gradient_reducer(&self) -> Option<Box<dyn Reducer>> {
        None
    }
    /// End every rank of the job with exit code `code` (MPI_Abort; not a collective: one
    /// failing rank calls it so the others do not wait forever on a collective).
    fn abort(&self, code: i32) -> !;
}

/// Sums over the ranks from the communication thread ([`Comm::gradient_reducer`]).
pub trait Reducer: Send {
    /// Replace `buf` by its elementwise sum over the ranks (a collective).
    fn sum_f32(&mut self, buf: &mut [f32]);
    /// Replace `buf` by its elementwise sum over the ranks (a collective).
    fn sum_f64(&mut self, buf: &mut [f64]);
}

/// One process alone: rank 0 of 1, every collective a no-op.
#[derive(Debug, Clone, Copy, Default)]
pub struct Local;

impl Comm for Local {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn barrier(&self) {}
    fn broadcast_bytes(&self, _buf: &mut [u8], _root: usize) {}
    fn broadcast_f32(&self, _buf: &mut [f32], _root: usize) {}
    fn all_reduce_sum_f32(&self, _buf: &mut [f32]) {}
    fn all_reduce_sum_f64(&self, _buf: &mut [f64]) {}
    fn all_gather_u64(&self, value: u64) -> Vec<u64> {
        vec![value]
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// Whether any rank raised `flag` (so all ranks take the same branch, e.g. stopping on
/// Ctrl-C at the same step even though the signal reached them at different times).
pub fn all_agree(comm: &dyn Comm, flag: bool) -> bool {
    let mut v = [f64::from(u8::from(flag))];
    comm.all_reduce_sum_f64(&mut v);
    v[0] > 0.0
}

/// `root`'s `text` on every rank (the others' `text` is ignored).
pub fn broadcast_string(comm: &dyn Comm, text: &str, root: usize) -> String {
    let mut len = [if comm.rank() == root { text.len() as f64 } else { 0.0 }];
    comm.all_reduce_sum_f64(&mut len);
    let mut bytes = text.as_bytes().to_vec();
    bytes.resize(len[0] as usize, 0);
    comm.broadcast_bytes(&mut bytes, root);
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_collectives_leave_values_and_gather_one() {
        let c = Local;
        let mut f = [1.5f32, -2.0];
        c.all_reduce_sum_f32(&mut f);
        c.broadcast_f32(&mut f, 0);
        let mut d = [3.0f64];
        c.all_reduce_sum_f64(&mut d);
        let mut b = [7u8, 9];
        c.broadcast_bytes(&mut b, 0);
        c.barrier();
        assert_eq!((f, d, b), ([1.5, -2.0], [3.0], [7, 9]));
        assert_eq!(c.all_gather_u64(42), vec![42]);
        assert!(all_agree(&c, true) && !all_agree(&c, false));
        assert_eq!(broadcast_string(&c, "run/version_3", 0), "run/version_3");
    }
}
