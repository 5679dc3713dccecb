//! The one place that knows the CPU: which instruction-set level it has, and which level the
//! kernels use.
//!
//! Kernels never test CPU features themselves; they ask [`isa`] and pick their implementation
//! by the answer. The level is the detected one, lowered by the `NABLA_ISA` environment
//! variable (`scalar`, `avx2`, `avx512`, `neon`; a level above the CPU's is refused with a
//! warning and the detected level kept), and lowered further on one thread by [`with_isa`],
//! which tests use to run every path the machine has.
//!
//! ```
//! use nabla_core::cpu::{self, Isa};
//! let top = cpu::isa();
//! assert!(cpu::supported().contains(&Isa::Scalar));
//! cpu::with_isa(Isa::Scalar, || assert_eq!(cpu::isa(), Isa::Scalar));
//! assert_eq!(cpu::isa(), top);
//! ```
//!
//! A kernel that splits its work over threads reads the level once on the calling thread and
//! passes it to its tasks: the [`with_isa`] override belongs to the thread that set it.

use std::cell::Cell;
use std::fmt;
use std::sync::OnceLock;

/// An instruction-set level, ordered from the least to the most capable on each architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Portable code: whatever the compiler's baseline target allows.
    Scalar,
    /// AArch64 Advanced SIMD (NEON), 4 f32 lanes.
    Neon,
    /// x86-64 AVX2 with FMA, 8 f32 lanes.
    Avx2,
    /// x86-64 AVX-512 (F, BW, VL) with AVX2 and FMA, 16 f32 lanes.
    Avx512,
}

impl Isa {
    /// The name `NABLA_ISA` takes and `nabla info` prints.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Neon => "neon",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// The level named `s` (as [`Isa::name`] writes it), if any.
    pub fn parse(s: &str) -> Option<Isa> {
        [Isa::Scalar, Isa::Neon, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .find(|i| i.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Whether code for `self` runs on a CPU at level `at`: the same level, a lower x86 level
    /// on x86, or scalar anywhere.
    pub fn runs_on(self, at: Isa) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Neon => at == Isa::Neon,
            Isa::Avx2 | Isa::Avx512 => at >= self && at != Isa::Neon,
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The most capable level this CPU supports, detected once.
pub fn detected() -> Isa {
    static DETECTED: OnceLock<Isa> = OnceLock::new();
    *DETECTED.get_or_init(detect)
}

fn detect() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx2") && has!("fma") {
            return Isa::Avx512;
        }
        if has!("avx2") && has!("fma") {
            return Isa::Avx2;
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            return Isa::Neon;
        }
    }
    Isa::Scalar
}

/// Every level this CPU can run, from scalar up (what tests loop over).
pub fn supported() -> Vec<Isa> {
    let top = detected();
    [Isa::Scalar, Isa::Neon, Isa::Avx2, Isa::Avx512]
        .into_iter()
        .filter(|i| i.runs_on(top))
        .collect()
}

/// The level the process uses: [`detected`], lowered by `NABLA_ISA` when that names a level
/// the CPU supports. Read once.
pub fn process_isa() -> Isa {
    static PROCESS: OnceLock<Isa> = OnceLock::new();
    *PROCESS.get_or_init(|| {
        let top = detected();
        match std::env::var("NABLA_ISA") {
            Ok(v) if !v.trim().is_empty() => match Isa::parse(&v) {
                Some(want) if want.runs_on(top) => want,
                Some(want) => {
                    eprintln!("warning: NABLA_ISA={want} is not supported by this CPU; using {top}");
                    top
                }
                None => {
                    eprintln!("warning: NABLA_ISA={v:?} is not one of scalar, avx2, avx512, neon; using {top}");
                    top
                }
            },
            _ => top,
        }
    })
}

thread_local! {
    static FORCED: Cell<Option<Isa>> = const { Cell::new(None) };
}

/// The level kernels use on this thread: [`with_isa`]'s while it runs, else [`process_isa`].
#[inline]
pub fn isa() -> Isa {
    FORCED.with(|f| f.get()).unwrap_or_else(process_isa)
}

/// Run `f` with kernels on this thread using `level`. Panics if the CPU cannot run `level`
/// (a test asking for a path the machine lacks must skip it instead; see [`supported`]).
pub fn with_isa<R>(level: Isa, f: impl FnOnce() -> R) -> R {
    assert!(
        level.runs_on(detected()),
        "with_isa: this CPU ({}) cannot run {level} code",
        detected()
    );
    struct Restore(Option<Isa>);
    impl Drop for Restore {
        fn drop(&mut self) {
            FORCED.with(|f| f.set(self.0));
        }
    }
    let _restore = Restore(FORCED.with(|c| c.replace(Some(level))));
    f()
}

/// A one-line description for `nabla info` and benchmark headers, e.g.
/// `detected avx512, using avx2 (NABLA_ISA)`.
pub fn describe() -> String {
    let (top, used) = (detected(), process_isa());
    if top == used {
        format!("detected {top}, using {used}")
    } else {
        format!("detected {top}, using {used} (NABLA_ISA)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for i in [Isa::Scalar, Isa::Neon, Isa::Avx2, Isa::Avx512] {
            assert_eq!(Isa::parse(i.name()), Some(i));
        }
        assert_eq!(Isa::parse(" AVX2 "), Some(Isa::Avx2));
        assert_eq!(Isa::parse("sse"), None);
    }

    #[test]
    fn levels_nest() {
        assert!(Isa::Avx2.runs_on(Isa::Avx512));
        assert!(!Isa::Avx512.runs_on(Isa::Avx2));
        assert!(!Isa::Neon.runs_on(Isa::Avx512));
        assert!(!Isa::Avx2.runs_on(Isa::Neon));
        assert!(Isa::Scalar.runs_on(Isa::Neon));
        let s = supported();
        assert_eq!(s.first(), Some(&Isa::Scalar));
        assert_eq!(s.last(), Some(&detected()));
    }

    #[test]
    fn forcing_is_per_thread_and_restored() {
        let before = isa();
        with_isa(Isa::Scalar, || {
            assert_eq!(isa(), Isa::Scalar);
            let other = std::thread::spawn(isa).join().expect("thread");
            assert_eq!(other, process_isa(), "another thread keeps the process level");
        });
        assert_eq!(isa(), before);
        let caught = std::panic::catch_unwind(|| with_isa(Isa::Scalar, || panic!("inside")));
        assert!(caught.is_err());
        assert_eq!(isa(), before, "restored after a panic too");
    }
}
