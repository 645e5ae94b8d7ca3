//! NumPy `.npy` files (format version 1.0), little-endian int64, float64 or float32, C order.

/// Encodes `data` with `shape` as a `.npy` file of dtype `<i8`.
pub fn encode_i64(shape: &[usize], data: impl ExactSizeIterator<Item = i64>) -> Vec<u8> {
    let mut out = header("<i8", shape, data.len());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Encodes `data` with `shape` as a `.npy` file of dtype `<f8`.
pub fn encode_f64(shape: &[usize], data: impl ExactSizeIterator<Item = f64>) -> Vec<u8> {
    let mut out = header("<f8", shape, data.len());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Encodes `data` with `shape` as a `.npy` file of dtype `<f4`.
pub fn encode_f32(shape: &[usize], data: impl ExactSizeIterator<Item = f32>) -> Vec<u8> {
    let mut out = header("<f4", shape, data.len());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// The magic, version and header of a version-1.0 file, with room for `len` items.
fn header(descr: &str, shape: &[usize], len: usize) -> Vec<u8> {
    assert_eq!(
        shape.iter().product::<usize>(),
        len,
        "shape {shape:?} does not hold the data"
    );
    let dims = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n', padded to a multiple of 64.
    let total = (10 + header.len() + 1).div_ceil(64) * 64;
    header.push_str(&" ".repeat(total - 10 - header.len() - 1));
    header.push('\n');
    let mut out = Vec::with_capacity(total + 8 * len);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

/// Decodes a `.npy` file written by [`encode_i64`] (or by numpy with dtype `<i8`, C order).
pub fn decode_i64(bytes: &[u8]) -> Result<(Vec<usize>, Vec<i64>), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file".into());
    }
    if bytes[6] != 1 {
        return Err(format!(
            "unsupported .npy version {}.{}",
            bytes[6], bytes[7]
        ));
    }
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(bytes.get(10..10 + hlen).ok_or("truncated header")?)
        .map_err(|_| "header is not ASCII")?;
    if !header.contains("'descr': '<i8'") || !header.contains("'fortran_order': False") {
        return Err(format!("unsupported dtype or order: {header}"));
    }
    let shape_src = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or("no shape in header")?;
    let shape: Vec<usize> = shape_src
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| format!("bad shape {shape_src}")))
        .collect::<Result<_, _>>()?;
    let body = &bytes[10 + hlen..];
    let n: usize = shape.iter().product();
    if body.len() != 8 * n {
        return Err(format!(
            "expected {} data bytes, found {}",
            8 * n,
            body.len()
        ));
    }
    let data = body
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    Ok((shape, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_alignment() {
        for shape in [vec![5], vec![3, 2], vec![2, 3, 4], vec![0, 2]] {
            let n: usize = shape.iter().product();
            let data: Vec<i64> = (0..n as i64).map(|v| v * 7 - 3).collect();
            let bytes = encode_i64(&shape, data.iter().copied());
            let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            assert_eq!((10 + hlen) % 64, 0);
            assert_eq!(bytes[10 + hlen - 1], b'\n');
            assert_eq!(decode_i64(&bytes).unwrap(), (shape, data));
        }
        let f = encode_f64(&[2, 2], [0.5, -1.0, 2.25, f64::NAN].into_iter());
        assert!(std::str::from_utf8(&f[10..70])
            .unwrap()
            .contains("'descr': '<f8'"));
        let hlen = u16::from_le_bytes([f[8], f[9]]) as usize;
        assert_eq!(
            f64::from_le_bytes(f[10 + hlen + 16..10 + hlen + 24].try_into().unwrap()),
            2.25
        );
        let one = encode_i64(&[5], [0i64; 5].into_iter());
        assert!(std::str::from_utf8(&one[10..70])
            .unwrap()
            .contains("'shape': (5,)"));
        assert!(decode_i64(b"nonsense").is_err());
    }
}
