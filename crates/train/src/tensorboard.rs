//! TensorBoard event files: each epoch's metrics as scalars, in the documented TFRecord
//! framing (length, masked CRC-32C of the length, the record, its masked CRC-32C) around
//! `Event` protocol buffers, encoded here by hand (a handful of fields). TensorBoard reads
//! every `*tfevents*` file of a folder, so a resumed run appends a file of its own.

use crate::record::Record;
use crate::{Result, TrainError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The CRC-32C (Castagnoli) of `data`, bit by bit over a 256-entry table.
pub fn crc32c(data: &[u8]) -> u32 {
    const POLY: u32 = 0x82F6_3B78;
    let table: [u32; 256] = std::array::from_fn(|i| {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
        }
        c
    });
    !data
        .iter()
        .fold(!0u32, |c, &b| table[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8))
}

/// TFRecord's masked CRC: rotated and offset, so a CRC of CRCs is not a CRC.
fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xA282_EAD8)
}

/// One record in TFRecord framing.
pub fn frame(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited protobuf field.
fn bytes_field(field: u64, data: &[u8], out: &mut Vec<u8>) {
    varint(field << 3 | 2, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

/// An `Event { wall_time = 1 (double), step = 2 (int64), ... }` with `rest` appended.
fn event(wall_time: f64, step: u64, rest: &[u8]) -> Vec<u8> {
    let mut e = vec![1 << 3 | 1];
    e.extend_from_slice(&wall_time.to_le_bytes());
    varint(2 << 3, &mut e);
    varint(step, &mut e);
    e.extend_from_slice(rest);
    e
}

/// `Event.summary = 5 { value = 1 { tag = 1, simple_value = 2 (float) } ... }`.
fn scalars_event(wall_time: f64, step: u64, scalars: &[(String, f64)]) -> Vec<u8> {
    let mut summary = Vec::new();
    for (tag, v) in scalars {
        let mut value = Vec::new();
        bytes_field(1, tag.as_bytes(), &mut value);
        value.push(2 << 3 | 5);
        value.extend_from_slice(&(*v as f32).to_le_bytes());
        bytes_field(1, &value, &mut summary);
    }
    let mut rest = Vec::new();
    bytes_field(5, &summary, &mut rest);
    event(wall_time, step, &rest)
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// An open event file of a run.
pub struct EventWriter {
    path: PathBuf,
    file: std::fs::File,
}

impl EventWriter {
    /// Start `events.out.tfevents.<seconds>.nabla.<pid>` in `dir` with the file-version event.
    pub fn create(dir: &Path) -> Result<EventWriter> {
        let t = now();
        let path = dir.join(format!("events.out.tfevents.{}.nabla.{}", t as u64, std::process::id()));
        let file = std::fs::File::create(&path).map_err(|e| TrainError::io("create", &path, e))?;
        let mut w = EventWriter { path, file };
        let mut rest = Vec::new();
        bytes_field(3, b"brain.Event:2", &mut rest);
        w.write(&event(t, 0, &rest))?;
        Ok(w)
    }

    fn write(&mut self, event: &[u8]) -> Result<()> {
        let rec = frame(event);
        self.file
            .write_all(&rec)
            .and_then(|()| self.file.flush())
            .map_err(|e| TrainError::io("write", &self.path, e))
    }

    /// An epoch's metrics and learning rate, at the epoch as the step; tags are
    /// `train/loss`, `val/acc`, ... and `lr` (non-finite values are left out).
    pub fn epoch(&mut self, rec: &Record) -> Result<()> {
        let mut scalars: Vec<(String, f64)> = rec.metrics.iter().map(|(k, v)| (k.replacen('_', "/", 1), *v)).collect();
        scalars.push(("lr".into(), rec.lr));
        scalars.retain(|(_, v)| v.is_finite());
        self.write(&scalars_event(now(), rec.epoch, &scalars))
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn records_are_framed_and_scalars_encoded() {
        let rec = frame(b"abc");
        assert_eq!(&rec[..8], &3u64.to_le_bytes());
        assert_eq!(&rec[12..15], b"abc");
        assert_eq!(u32::from_le_bytes(rec[15..19].try_into().unwrap()), masked_crc(b"abc"));
        let e = scalars_event(1.5, 3, &[("val/acc".into(), 0.5)]);
        // wall_time, step 3, then summary { value { tag "val/acc", simple_value 0.5f } }.
        let mut want = vec![0x09];
        want.extend_from_slice(&1.5f64.to_le_bytes());
        want.extend_from_slice(&[0x10, 3, 0x2A, 16, 0x0A, 14, 0x0A, 7]);
        want.extend_from_slice(b"val/acc");
        want.push(0x15);
        want.extend_from_slice(&0.5f32.to_le_bytes());
        assert_eq!(e, want);
    }
}
