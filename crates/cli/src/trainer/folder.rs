//! The run folder: `runs/<model>-<data>/version_N/` by default, numbered as Lightning
//! numbers its logs so that no run overwrites another; `--out DIR` as given, refused when
//! it holds anything unless `--overwrite`; a resumed run's own folder.

use crate::config::TrainConfig;
use crate::error::{CliError, CliResult};
use std::path::{Path, PathBuf};

/// The files a run writes, removed from an `--out` folder that `--overwrite` reuses so
/// nothing of the old run (a best checkpoint the new one never replaces) is left behind.
const RUN_FILES: &[&str] = &[
    "metrics.jsonl",
    "curves.png",
    "confusion.png",
    "reconstructions.png",
    "latent.png",
    "predictions.png",
    "segmentation.png",
    "last.safetensors",
    "best.safetensors",
    "config.toml",
];

/// The highest `N` of the `version_N` folders in `base` (none: `None`).
fn last_version(base: &Path) -> Option<u64> {
    let entries = std::fs::read_dir(base).ok()?;
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("version_")?.parse().ok())
        .max()
}

/// Make (and return) the folder a run writes to; called once the arguments, the data and
/// the model are known to be good, so a failed start leaves nothing behind.
pub fn create(cfg: &TrainConfig, resuming: bool, overwrite: bool) -> CliResult<PathBuf> {
    create_in(cfg.out.as_deref(), &cfg.out_dir(), resuming, overwrite)
}

/// [`create`] for any command's runs: `out` as given (refused when busy unless
/// `overwrite`), else a new `version_N` under `base`; resuming, `base` itself (the
/// checkpoint's folder).
pub fn create_in(out: Option<&Path>, base: &Path, resuming: bool, overwrite: bool) -> CliResult<PathBuf> {
    let mk = |d: &Path| std::fs::create_dir_all(d).map_err(|e| CliError::io("create output directory", d, e));
    if resuming {
        let dir = out.unwrap_or(base).to_path_buf();
        mk(&dir)?;
        return Ok(dir);
    }
    if let Some(dir) = out {
        if dir.exists() && !dir.is_dir() {
            return Err(CliError::new(format!("--out {}: not a directory", dir.display())));
        }
        let busy = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
        if busy && !overwrite {
            return Err(CliError::new(format!(
                "--out {}: the folder is not empty (add --overwrite to write into it, or leave out --out \
                 for a new runs/.../version_N folder)",
                dir.display()
            )));
        }
        if busy {
            for f in RUN_FILES {
                let p = dir.join(f);
                if p.is_file() {
                    std::fs::remove_file(&p).map_err(|e| CliError::io("remove", &p, e))?;
                }
            }
        }
        mk(dir)?;
        return Ok(dir.to_path_buf());
    }
    mk(base)?;
    let mut n = last_version(base).map_or(0, |v| v + 1);
    loop {
        let dir = base.join(format!("version_{n}"));
        // create_dir (not _all) fails if another run took this number first.
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(CliError::io("create output directory", &dir, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_up_and_a_busy_out_folder_is_refused() {
        let tmp = std::env::temp_dir().join(format!("nabla-folder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let cfg = TrainConfig {
            out: None,
            ..TrainConfig::default()
        };
        // out_dir() is relative (runs/...); test the numbering on an explicit base.
        std::fs::create_dir_all(tmp.join("version_3")).unwrap();
        std::fs::create_dir_all(tmp.join("other")).unwrap();
        assert_eq!(last_version(&tmp), Some(3));
        assert_eq!(last_version(&tmp.join("none")), None);
        let out = TrainConfig {
            out: Some(tmp.join("version_3")),
            ..cfg.clone()
        };
        std::fs::write(tmp.join("version_3/metrics.jsonl"), "x").unwrap();
        std::fs::write(tmp.join("version_3/notes.txt"), "mine").unwrap();
        let e = create(&out, false, false).unwrap_err().to_string();
        assert!(e.contains("not empty") && e.contains("--overwrite"), "{e}");
        assert_eq!(create(&out, false, true).unwrap(), tmp.join("version_3"));
        assert!(!tmp.join("version_3/metrics.jsonl").exists());
        assert!(tmp.join("version_3/notes.txt").exists(), "only the run's own files go");
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
