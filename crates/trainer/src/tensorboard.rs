//! TensorBoard event files: the metrics of a run as scalars, so `tensorboard --logdir runs/`
//! shows modicl runs beside anything else.
//!
//! The file is the TFRecord framing of `Event` protocol buffers:
//! - each record is its length (u64, little-endian), the masked CRC-32C of those 8 bytes, the
//!   bytes, and their masked CRC-32C (`crc32c` crate);
//! - an `Event` is wall_time (field 1, double), step (2, int64) and either file_version (3,
//!   string; the first record) or a summary (5), which holds repeated values (1), each a tag
//!   (1, string) and a simple_value (2, float).
//!
//! These few fields are encoded by hand here: a protobuf code generator (prost and its build
//! step) would be a larger dependency than the encoding itself.
//!
//! The file is rewritten whole, atomically, from the run's records at every evaluation, like
//! metrics.csv, so a resumed run's file holds exactly the evaluations metrics.csv holds. Wall
//! times are written as 0: the same run gives the same bytes, and TensorBoard's step axis is the
//! one that means something across resumed runs.

use crate::metrics::Record;
use crate::names::Metric;

/// The event file's name under `<run>/tb/` (TensorBoard reads files whose names contain
/// `tfevents`).
pub const FILE: &str = "events.out.tfevents.0.modicl";

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field.
fn bytes_field(field: u32, data: &[u8], out: &mut Vec<u8>) {
    varint(((field << 3) | 2) as u64, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// One TFRecord.
fn record(data: &[u8], out: &mut Vec<u8>) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

/// An `Event` with wall time 0 and the given step, and a body (file_version or summary).
fn event(step: u64, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut e = Vec::new();
    e.push(0x09); // wall_time, fixed64
    e.extend_from_slice(&0f64.to_le_bytes());
    e.push(0x10); // step, varint
    varint(step, &mut e);
    body(&mut e);
    e
}

/// The tags of a record's scalars: `<set>/<metric>` for every set and metric of metrics.csv,
/// and `lr`.
pub fn scalars(r: &Record) -> Vec<(String, f64)> {
    let mut v = vec![("lr".to_string(), r.lr)];
    for m in &r.sets {
        for metric in Metric::ALL {
            v.push((format!("{}/{metric}", m.set), m.get(metric)));
        }
    }
    v
}

/// The whole event file for `records`.
pub fn event_file(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    record(&event(0, |e| bytes_field(3, b"brain.Event:2", e)), &mut out);
    for r in records {
        let mut summary = Vec::new();
        for (tag, value) in scalars(r) {
            let mut v = Vec::new();
            bytes_field(1, tag.as_bytes(), &mut v);
            v.push(0x15); // simple_value, fixed32
            v.extend_from_slice(&(value as f32).to_le_bytes());
            bytes_field(1, &v, &mut summary);
        }
        record(&event(r.step, |e| bytes_field(5, &summary, e)), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    // The mask written out as TensorFlow's code does (shifts), independent of the rotation above.
    #[allow(clippy::manual_rotate)]
    fn masked_crc_matches_tensorflow() {
        // CRC-32C of "123456789" is 0xE3069283 (the standard check value).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        // TensorFlow's mask: rotate right 15, add 0xa282ead8.
        let c = 0xE306_9283u32;
        assert_eq!(
            masked_crc(b"123456789"),
            ((c >> 15) | (c << 17)).wrapping_add(0xa282ead8)
        );
    }

    #[test]
    fn varints_encode_as_protobuf() {
        let enc = |v: u64| {
            let mut o = Vec::new();
            varint(v, &mut o);
            o
        };
        assert_eq!(enc(1), [1]);
        assert_eq!(enc(300), [0xac, 0x02]);
        assert_eq!(enc(150), [0x96, 0x01]);
    }
}
