//! Carrying one sequence's KV cells between two contexts of one model whose
//! value caches differ in element type or layout.
//!
//! Why: llama.cpp's fastest prefill kernels (llamafile's sgemm for
//! attention, tiled flash attention) compute a row differently from the
//! single-token decode path, while the paths that keep a verify batch equal
//! to one-token decoding (flash attention with keys and values of different
//! types) prefill slowly. A prompt can be prefilled in a context of the first
//! kind and decoded in one of the second, if its cells can move across.
//!
//! The state blob is llama.cpp's own per-sequence format
//! (`llama_state_seq_get_data`, `llama_kv_cache::state_write_data` in the
//! pinned llama.cpp). Keys are copied as they are (both contexts must store
//! them alike; llama.cpp checks that on restore). Values are re-laid out
//! (transposed without flash attention) and converted between f32, f16 and
//! bf16. Anything else (rotated or quantised values, a blob that does not
//! parse to its last byte) is refused, never guessed at.

use llama_cpp_sys_2 as sys;

/// How a context stores its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ValueLayout {
    /// ggml type id of a value element.
    pub ty: u32,
    /// Stored one row per embedding dimension (no flash attention) rather
    /// than one row per cell.
    pub transposed: bool,
}

/// Why a blob could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvStateError {
    #[error("the state ends early (at byte {0})")]
    Truncated(usize),
    #[error("{0} bytes are left after the last cache")]
    Trailing(usize),
    #[error("value type {0} cannot be converted (f32, f16 and bf16 can)")]
    ValueType(u32),
    #[error("values are rotated (n_rot_v {0}); they cannot be converted")]
    Rotated(u32),
    #[error("a size in the state is inconsistent: {0}")]
    Size(&'static str),
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], KvStateError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or(KvStateError::Truncated(self.at))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, KvStateError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, KvStateError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    /// Copy `n` bytes through unchanged.
    fn pass(&mut self, n: usize, out: &mut Vec<u8>) -> Result<(), KvStateError> {
        out.extend_from_slice(self.take(n)?);
        Ok(())
    }
    fn pass_u32(&mut self, out: &mut Vec<u8>) -> Result<u32, KvStateError> {
        let v = self.u32()?;
        out.extend_from_slice(&v.to_le_bytes());
        Ok(v)
    }
}

fn element_size(ty: u32) -> Result<usize, KvStateError> {
    match ty {
        sys::GGML_TYPE_F32 => Ok(4),
        sys::GGML_TYPE_F16 | sys::GGML_TYPE_BF16 => Ok(2),
        other => Err(KvStateError::ValueType(other)),
    }
}

fn to_f32(ty: u32, b: &[u8]) -> f32 {
    match ty {
        sys::GGML_TYPE_F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
        sys::GGML_TYPE_BF16 => half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
        _ => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
    }
}

fn push_value(ty: u32, v: f32, out: &mut Vec<u8>) {
    match ty {
        sys::GGML_TYPE_F16 => out.extend_from_slice(&half::f16::from_f32(v).to_le_bytes()),
        sys::GGML_TYPE_BF16 => out.extend_from_slice(&half::bf16::from_f32(v).to_le_bytes()),
        _ => out.extend_from_slice(&v.to_le_bytes()),
    }
}

/// Rewrite a sequence's state blob for a context whose values are stored as
/// `to`. `cell_ext` is the size of llama.cpp's per-cell extra position data
/// (0 unless the model uses multi-axis positions).
pub(crate) fn convert(blob: &[u8], to: ValueLayout, cell_ext: usize) -> Result<Vec<u8>, KvStateError> {
    element_size(to.ty)?;
    let mut r = Reader { bytes: blob, at: 0 };
    let mut out = Vec::with_capacity(blob.len() * 2);
    r.pass(8, &mut out)?; // magic, seq id
                          // One cache, or two (sliding-window layers keep theirs apart), each
                          // written alike.
    for _ in 0..MAX_CACHES {
        convert_cache(&mut r, to, cell_ext, &mut out)?;
        if r.at == blob.len() {
            return Ok(out);
        }
    }
    Err(KvStateError::Trailing(blob.len() - r.at))
}

/// Caches one state may hold (llama.cpp's sliding-window models have two).
const MAX_CACHES: usize = 2;

fn convert_cache(r: &mut Reader, to: ValueLayout, cell_ext: usize, out: &mut Vec<u8>) -> Result<(), KvStateError> {
    let n_stream = r.pass_u32(out)?;
    for _ in 0..n_stream {
        let cells = r.pass_u32(out)? as usize;
        if cells == 0 {
            continue;
        }
        for _ in 0..cells {
            r.pass(4, out)?; // position
            let n_seq = r.pass_u32(out)? as usize;
            r.pass(cell_ext, out)?;
            let ids = n_seq.checked_mul(4).ok_or(KvStateError::Size("sequence ids"))?;
            r.pass(ids, out)?;
        }
        convert_data(r, to, cells, out)?;
    }
    Ok(())
}

fn convert_data(r: &mut Reader, to: ValueLayout, cells: usize, out: &mut Vec<u8>) -> Result<(), KvStateError> {
    let transposed = r.u32()? != 0;
    out.extend_from_slice(&u32::from(to.transposed).to_le_bytes());
    let n_layer = r.pass_u32(out)?;
    r.pass_u32(out)?; // key rotation: llama.cpp checks it against the target on restore
    let rot_v = r.pass_u32(out)?;
    if rot_v != 0 {
        return Err(KvStateError::Rotated(rot_v));
    }
    for _ in 0..n_layer {
        r.pass(4, out)?; // key type
        let row = r.u64()?;
        out.extend_from_slice(&row.to_le_bytes());
        let n = usize::try_from(row).ok().and_then(|row| row.checked_mul(cells)).ok_or(KvStateError::Size("keys"))?;
        r.pass(n, out)?;
    }
    for _ in 0..n_layer {
        let from = r.u32()?;
        let el = element_size(from)?;
        let n_embd = if transposed {
            if r.u32()? as usize != el {
                return Err(KvStateError::Size("value element"));
            }
            r.u32()? as usize
        } else {
            let row = usize::try_from(r.u64()?).map_err(|_| KvStateError::Size("value row"))?;
            if row % el != 0 {
                return Err(KvStateError::Size("value row"));
            }
            row / el
        };
        let n = n_embd.checked_mul(cells).and_then(|n| n.checked_mul(el)).ok_or(KvStateError::Size("values"))?;
        let data = r.take(n)?;
        write_values(data, from, transposed, n_embd, cells, to, out);
    }
    Ok(())
}

/// Header and elements of one layer's values in the target layout.
fn write_values(
    data: &[u8],
    from: u32,
    transposed: bool,
    n_embd: usize,
    cells: usize,
    to: ValueLayout,
    out: &mut Vec<u8>,
) {
    let (el_from, el_to) = (element_size(from).unwrap_or(4), element_size(to.ty).unwrap_or(4));
    out.extend_from_slice(&to.ty.to_le_bytes());
    if to.transposed {
        out.extend_from_slice(&(el_to as u32).to_le_bytes());
        out.extend_from_slice(&(n_embd as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&((n_embd * el_to) as u64).to_le_bytes());
    }
    // Element (dimension j, cell c) in the source.
    let at = |j: usize, c: usize| if transposed { j * cells + c } else { c * n_embd + j } * el_from;
    let (outer, inner) = if to.transposed { (n_embd, cells) } else { (cells, n_embd) };
    for o in 0..outer {
        for i in 0..inner {
            let (j, c) = if to.transposed { (o, i) } else { (i, o) };
            let b = &data[at(j, c)..at(j, c) + el_from];
            if from == to.ty {
                out.extend_from_slice(b);
            } else {
                push_value(to.ty, to_f32(from, b), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F16: u32 = sys::GGML_TYPE_F16;
    const BF16: u32 = sys::GGML_TYPE_BF16;
    const F32: u32 = sys::GGML_TYPE_F32;

    /// A blob in llama.cpp's layout: `cells` cells at positions 0.., two
    /// layers, keys of 3 bytes a row, values `vals[layer][cell][dim]`.
    fn blob(values: &[Vec<Vec<f32>>], ty: u32, transposed: bool) -> Vec<u8> {
        let cells = values[0].len();
        let n_embd = values[0][0].len();
        let mut b = Vec::new();
        b.extend_from_slice(&0xdead_beef_u32.to_le_bytes());
        b.extend_from_slice(&0i32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&(cells as u32).to_le_bytes());
        for c in 0..cells {
            b.extend_from_slice(&(c as i32).to_le_bytes());
            b.extend_from_slice(&1u32.to_le_bytes());
            b.extend_from_slice(&0i32.to_le_bytes());
        }
        b.extend_from_slice(&u32::from(transposed).to_le_bytes());
        b.extend_from_slice(&(values.len() as u32).to_le_bytes());
        b.extend_from_slice(&[0; 8]);
        for l in 0..values.len() {
            b.extend_from_slice(&F16.to_le_bytes());
            b.extend_from_slice(&3u64.to_le_bytes());
            b.extend((0..3 * cells).map(|i| (i + 10 * l) as u8));
        }
        for layer in values {
            let mut v = Vec::new();
            if transposed {
                for j in 0..n_embd {
                    layer.iter().for_each(|cell| push_value(ty, cell[j], &mut v));
                }
            } else {
                layer.iter().flatten().for_each(|&x| push_value(ty, x, &mut v));
            }
            write_values(&v, ty, transposed, n_embd, cells, ValueLayout { ty, transposed }, &mut b);
        }
        b
    }

    fn values(layers: usize, cells: usize, n_embd: usize) -> Vec<Vec<Vec<f32>>> {
        (0..layers)
            .map(|l| {
                (0..cells).map(|c| (0..n_embd).map(|j| (l * 100 + c * 10 + j) as f32 * 0.25 - 7.0).collect()).collect()
            })
            .collect()
    }

    #[test]
    fn every_layout_and_type_converts_to_what_a_direct_write_would_be() {
        let vals = values(2, 5, 4);
        for from in [F16, BF16, F32] {
            for to in [F16, BF16, F32] {
                for (tf, tt) in [(false, false), (true, false), (false, true), (true, true)] {
                    let got = convert(&blob(&vals, from, tf), ValueLayout { ty: to, transposed: tt }, 0).unwrap();
                    // These values are exact in every type, so converting is lossless.
                    assert_eq!(got, blob(&vals, to, tt), "{from} {tf} -> {to} {tt}");
                }
            }
        }
    }

    #[test]
    fn f16_to_bf16_rounds_to_nearest() {
        let vals = vec![vec![vec![1.0 + 1.0 / 1024.0, -3.140625]]];
        let got = convert(&blob(&vals, F16, true), ValueLayout { ty: BF16, transposed: false }, 0).unwrap();
        let tail = &got[got.len() - 4..];
        assert_eq!(half::bf16::from_le_bytes([tail[0], tail[1]]).to_f32(), 1.0);
        assert_eq!(half::bf16::from_le_bytes([tail[2], tail[3]]).to_f32(), -3.140625);
    }

    #[test]
    fn damaged_blobs_are_refused() {
        let good = blob(&values(2, 3, 2), F16, true);
        let to = ValueLayout { ty: BF16, transposed: false };
        for cut in [0, 5, 13, good.len() / 2, good.len() - 1] {
            assert!(matches!(convert(&good[..cut], to, 0), Err(KvStateError::Truncated(_))), "cut at {cut}");
        }
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(convert(&long, to, 0), Err(KvStateError::Truncated(_))));
        assert!(convert(&good, ValueLayout { ty: sys::GGML_TYPE_Q8_0, transposed: false }, 0).is_err());
        // Rotated values (quantised caches) cannot be carried over.
        let mut rotated = good.clone();
        let data = 4 + 4 + 4 + 4 + 3 * 12;
        rotated[data + 12..data + 16].copy_from_slice(&64u32.to_le_bytes());
        assert_eq!(convert(&rotated, to, 0), Err(KvStateError::Rotated(64)));
        // Huge counts fail on length, not on allocation.
        let mut huge = good;
        huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(convert(&huge, to, 0).is_err());
    }

    #[test]
    fn a_second_cache_converts_like_the_first_and_a_third_is_refused() {
        let (a, b) = (values(2, 3, 2), values(2, 5, 2));
        let one = |v: &[Vec<Vec<f32>>], ty, t| blob(v, ty, t);
        let to = ValueLayout { ty: BF16, transposed: false };
        let mut two = one(&a, F16, true);
        two.extend_from_slice(&one(&b, F16, true)[8..]);
        let mut want = one(&a, BF16, false);
        want.extend_from_slice(&one(&b, BF16, false)[8..]);
        assert_eq!(convert(&two, to, 0).unwrap(), want);
        let mut three = two;
        three.extend_from_slice(&one(&a, F16, true)[8..]);
        assert!(matches!(convert(&three, to, 0), Err(KvStateError::Trailing(_))));
    }

    #[test]
    fn an_empty_sequence_converts_to_itself() {
        let mut b = Vec::new();
        b.extend_from_slice(&[1, 2, 3, 4, 0, 0, 0, 0]);
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(convert(&b, ValueLayout { ty: F16, transposed: true }, 0).unwrap(), b);
    }
}
