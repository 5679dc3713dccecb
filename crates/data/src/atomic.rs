//! Writing a file whole or not at all: the bytes go to a temporary file beside it, which is
//! synced and renamed over it, so an interrupted write never leaves half a file.

use crate::{DataError, Result};
use std::io::Write;
use std::path::Path;

/// `bytes` to `path` through a temporary file in the same folder and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| DataError::format(path, "not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    let done = written.and_then(|()| std::fs::rename(&tmp, path));
    done.map_err(|e| {
        // Only our own temporary file is removed; `path` is left as it was.
        let _ = std::fs::remove_file(&tmp);
        DataError::io(path, e)
    })
}
