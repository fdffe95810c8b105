//! GGUF container parsing. Every length and count read from the file is
//! checked against the bytes that remain before anything is allocated, so a
//! hostile header can cost at most what the file itself justifies.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{GgufError, HeaderError};
use crate::types::{tag, Array, GgmlType, TypeIdError, Value};
use crate::{GgufFile, TensorInfo};

/// Longest string accepted anywhere in the header. Real chat templates and
/// tokenizer JSON stay far below this.
pub const MAX_STRING_LEN: u64 = 64 << 20;
/// ggml stores names in a 64-byte buffer including the NUL terminator.
pub const MAX_TENSOR_NAME_LEN: usize = 63;
/// Alignment used when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Smallest possible KV: key length, a 1-byte key, type id, a 1-byte value.
const MIN_KV_BYTES: u64 = 8 + 1 + 4 + 1;
/// Smallest possible tensor info: name length, n_dims, one dim, type, offset.
const MIN_TENSOR_BYTES: u64 = 8 + 4 + 8 + 4 + 8;
/// Largest value ggml's signed 64-bit element counts can hold.
const MAX_ELEMENTS: u64 = i64::MAX as u64;

type Result<T> = std::result::Result<T, HeaderError>;

/// Opens and parses a GGUF file's header, naming the path in every error.
pub fn read_file(path: &Path) -> std::result::Result<GgufFile, GgufError> {
    let file = File::open(path).map_err(|e| open_error(path, e))?;
    let size = file.metadata().map_err(|e| open_error(path, e))?.len();
    parse_header(file, size).map_err(|source| GgufError::InFile { path: path.to_path_buf(), source })
}

fn open_error(path: &Path, source: io::Error) -> GgufError {
    if source.kind() == io::ErrorKind::NotFound {
        GgufError::NotFound { path: path.to_path_buf() }
    } else {
        GgufError::Open { path: path.to_path_buf(), source }
    }
}

/// Parses a GGUF header from `reader`, trusting `file_size` as the total
/// length. Only the header is read; tensor data is never touched.
pub fn parse<R: Read + Seek>(reader: R, file_size: u64) -> std::result::Result<GgufFile, GgufError> {
    parse_header(reader, file_size).map_err(GgufError::from)
}

fn parse_header<R: Read + Seek>(mut reader: R, file_size: u64) -> Result<GgufFile> {
    reader.seek(SeekFrom::Start(0)).map_err(|source| HeaderError::Io { offset: 0, source })?;
    let mut src = Src { r: BufReader::new(reader), pos: 0, size: file_size };
    let version = read_preamble(&mut src)?;
    let (n_tensors, n_kv) = read_counts(&mut src)?;
    let metadata = read_metadata(&mut src, n_kv)?;
    let raw = read_tensor_infos(&mut src, n_tensors)?;
    let alignment = alignment_of(&metadata)?;
    let data_offset = data_start(src.pos, alignment, !raw.is_empty(), file_size)?;
    let tensors = place_tensors(raw, data_offset, alignment, file_size)?;
    Ok(GgufFile { version, metadata, tensors, data_offset, file_size, alignment })
}

/// Position-tracking reader bounded by the declared file size.
struct Src<R> {
    r: BufReader<R>,
    pos: u64,
    size: u64,
}

impl<R: Read> Src<R> {
    fn remaining(&self) -> u64 {
        self.size.saturating_sub(self.pos)
    }

    fn need(&self, n: u64, what: &str) -> Result<()> {
        if n > self.remaining() {
            return Err(HeaderError::Truncated {
                what: what.to_string(),
                offset: self.pos,
                need: n,
                remaining: self.remaining(),
            });
        }
        Ok(())
    }

    fn fill(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        let n = buf.len() as u64;
        self.need(n, what)?;
        match self.r.read_exact(buf) {
            Ok(()) => {
                self.pos = self.pos.saturating_add(n);
                Ok(())
            }
            // The declared size promised these bytes; a short read means the
            // file shrank or the caller lied, which is still truncation.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(HeaderError::Truncated { what: what.to_string(), offset: self.pos, need: n, remaining: 0 })
            }
            Err(source) => Err(HeaderError::Io { offset: self.pos, source }),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.fill(&mut b, what)?;
        Ok(b)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// Reads exactly `n` bytes; callers have bounded `n` by `remaining()`.
    fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>> {
        self.need(n, what)?;
        let len = usize::try_from(n).map_err(|_| HeaderError::Truncated {
            what: what.to_string(),
            offset: self.pos,
            need: n,
            remaining: self.remaining(),
        })?;
        let mut buf = vec![0u8; len];
        self.fill(&mut buf, what)?;
        Ok(buf)
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.u64(what)?;
        if len > self.remaining() {
            return Err(HeaderError::StringPastEof { what: what.to_string(), len, remaining: self.remaining() });
        }
        if len > MAX_STRING_LEN {
            return Err(HeaderError::StringTooLong { what: what.to_string(), len, max: MAX_STRING_LEN });
        }
        let buf = self.bytes(len, what)?;
        String::from_utf8(buf).map_err(|_| HeaderError::InvalidUtf8 { what: what.to_string() })
    }
}

fn read_preamble<R: Read>(src: &mut Src<R>) -> Result<u32> {
    let magic: [u8; 4] = src.array("magic")?;
    if &magic != b"GGUF" {
        return Err(HeaderError::BadMagic { found: magic });
    }
    let version = src.u32("version")?;
    let reason = match version {
        2 | 3 => return Ok(version),
        0 => "version 0 is invalid",
        1 => "GGUF v1 is no longer supported; re-convert the model",
        v if v & 0xFFFF == 0 => "implausibly large; the file may be big-endian",
        _ => "newer than the supported version 3",
    };
    Err(HeaderError::Version { version, reason })
}

fn read_counts<R: Read>(src: &mut Src<R>) -> Result<(u64, u64)> {
    let n_tensors = src.u64("tensor count")?;
    let n_kv = src.u64("metadata count")?;
    let remaining = src.remaining();
    plausible("tensor", n_tensors, remaining, MIN_TENSOR_BYTES)?;
    plausible("metadata key-value", n_kv, remaining, MIN_KV_BYTES)?;
    // Both tables share the same bytes, so their minimum sizes must fit together.
    let total = n_tensors
        .checked_mul(MIN_TENSOR_BYTES)
        .and_then(|t| n_kv.checked_mul(MIN_KV_BYTES).and_then(|k| k.checked_add(t)));
    match total {
        Some(t) if t <= remaining => Ok((n_tensors, n_kv)),
        _ => Err(HeaderError::ImplausibleCount {
            what: "tensor + metadata",
            count: n_tensors.saturating_add(n_kv),
            remaining,
            max: remaining / MIN_TENSOR_BYTES.min(MIN_KV_BYTES),
        }),
    }
}

fn plausible(what: &'static str, count: u64, remaining: u64, min_each: u64) -> Result<()> {
    let max = remaining / min_each;
    if count > max {
        return Err(HeaderError::ImplausibleCount { what, count, remaining, max });
    }
    Ok(())
}

fn read_metadata<R: Read>(src: &mut Src<R>, n_kv: u64) -> Result<BTreeMap<String, Value>> {
    let mut map = BTreeMap::new();
    for index in 0..n_kv {
        let key = src.string("metadata key")?;
        if key.is_empty() {
            return Err(HeaderError::EmptyKey { index });
        }
        if map.contains_key(&key) {
            return Err(HeaderError::DuplicateKey { key });
        }
        let type_id = src.u32(&key)?;
        let value =
            if type_id == tag::ARRAY { Value::Array(read_array(src, &key)?) } else { read_scalar(src, &key, type_id)? };
        map.insert(key, value);
    }
    Ok(map)
}

fn read_scalar<R: Read>(src: &mut Src<R>, key: &str, type_id: u32) -> Result<Value> {
    Ok(match type_id {
        tag::U8 => Value::U8(u8::from_le_bytes(src.array(key)?)),
        tag::I8 => Value::I8(i8::from_le_bytes(src.array(key)?)),
        tag::U16 => Value::U16(u16::from_le_bytes(src.array(key)?)),
        tag::I16 => Value::I16(i16::from_le_bytes(src.array(key)?)),
        tag::U32 => Value::U32(u32::from_le_bytes(src.array(key)?)),
        tag::I32 => Value::I32(i32::from_le_bytes(src.array(key)?)),
        tag::F32 => Value::F32(f32::from_le_bytes(src.array(key)?)),
        tag::U64 => Value::U64(u64::from_le_bytes(src.array(key)?)),
        tag::I64 => Value::I64(i64::from_le_bytes(src.array(key)?)),
        tag::F64 => Value::F64(f64::from_le_bytes(src.array(key)?)),
        tag::BOOL => Value::Bool(to_bool(key, u8::from_le_bytes(src.array(key)?))?),
        tag::STRING => Value::String(src.string(key)?),
        _ => return Err(unknown_type(key, type_id)),
    })
}

fn to_bool(key: &str, byte: u8) -> Result<bool> {
    match byte {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(HeaderError::BadBool { key: key.to_string(), byte }),
    }
}

fn unknown_type(key: &str, type_id: u32) -> HeaderError {
    HeaderError::UnknownValueType { key: key.to_string(), type_id }
}

/// Bytes one element occupies at minimum (strings: just the length prefix).
fn elem_min_size(key: &str, type_id: u32) -> Result<u64> {
    Ok(match type_id {
        tag::U8 | tag::I8 | tag::BOOL => 1,
        tag::U16 | tag::I16 => 2,
        tag::U32 | tag::I32 | tag::F32 => 4,
        tag::U64 | tag::I64 | tag::F64 | tag::STRING => 8,
        tag::ARRAY => return Err(HeaderError::NestedArray { key: key.to_string() }),
        _ => return Err(unknown_type(key, type_id)),
    })
}

fn read_array<R: Read>(src: &mut Src<R>, key: &str) -> Result<Array> {
    let elem = src.u32(key)?;
    let len = src.u64(key)?;
    let size = elem_min_size(key, elem)?;
    let need = len.saturating_mul(size);
    if need > src.remaining() {
        return Err(HeaderError::ArrayPastEof { key: key.to_string(), len, need, remaining: src.remaining() });
    }
    if elem == tag::STRING {
        return read_string_array(src, key, len);
    }
    let raw = src.bytes(need, key)?;
    decode_numeric(key, elem, &raw)
}

fn read_string_array<R: Read>(src: &mut Src<R>, key: &str, len: u64) -> Result<Array> {
    // `len` is bounded by remaining/8, but a String is 24 bytes, so reserve
    // only a modest amount up front and let real strings grow the rest.
    let cap = usize::try_from(len.min(1 << 16)).unwrap_or(0);
    let mut out = Vec::with_capacity(cap);
    for _ in 0..len {
        out.push(src.string(key)?);
    }
    Ok(Array::String(out))
}

fn decode_numeric(key: &str, elem: u32, raw: &[u8]) -> Result<Array> {
    fn conv<const N: usize, T>(raw: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
        raw.chunks_exact(N).filter_map(|c| <[u8; N]>::try_from(c).ok()).map(f).collect()
    }
    Ok(match elem {
        tag::U8 => Array::U8(raw.to_vec()),
        tag::I8 => Array::I8(conv(raw, i8::from_le_bytes)),
        tag::U16 => Array::U16(conv(raw, u16::from_le_bytes)),
        tag::I16 => Array::I16(conv(raw, i16::from_le_bytes)),
        tag::U32 => Array::U32(conv(raw, u32::from_le_bytes)),
        tag::I32 => Array::I32(conv(raw, i32::from_le_bytes)),
        tag::F32 => Array::F32(conv(raw, f32::from_le_bytes)),
        tag::U64 => Array::U64(conv(raw, u64::from_le_bytes)),
        tag::I64 => Array::I64(conv(raw, i64::from_le_bytes)),
        tag::F64 => Array::F64(conv(raw, f64::from_le_bytes)),
        tag::BOOL => Array::Bool(raw.iter().map(|&b| to_bool(key, b)).collect::<Result<Vec<bool>>>()?),
        _ => return Err(unknown_type(key, elem)),
    })
}

fn read_tensor_infos<R: Read>(src: &mut Src<R>, n_tensors: u64) -> Result<Vec<TensorInfo>> {
    let mut seen = HashSet::new();
    // Bounded by remaining/32 in read_counts; still cap the up-front reserve.
    let mut out = Vec::with_capacity(usize::try_from(n_tensors.min(4096)).unwrap_or(0));
    for _ in 0..n_tensors {
        let t = read_tensor_info(src)?;
        if !seen.insert(t.name.clone()) {
            return Err(HeaderError::DuplicateTensor { name: t.name });
        }
        out.push(t);
    }
    Ok(out)
}

fn read_tensor_info<R: Read>(src: &mut Src<R>) -> Result<TensorInfo> {
    let name = src.string("tensor name")?;
    if name.len() > MAX_TENSOR_NAME_LEN {
        let len = name.len();
        return Err(HeaderError::TensorNameTooLong { name, len, max: MAX_TENSOR_NAME_LEN });
    }
    let dims = read_dims(src, &name)?;
    let n_elements = element_count(&name, &dims)?;
    let ggml_type = read_type(src, &name)?;
    let n_bytes = byte_size(&name, ggml_type, &dims, n_elements)?;
    let offset = src.u64(&name)?;
    Ok(TensorInfo { name, dims, ggml_type, offset, n_bytes })
}

fn read_dims<R: Read>(src: &mut Src<R>, name: &str) -> Result<Vec<u64>> {
    let n_dims = src.u32(name)?;
    if !(1..=4).contains(&n_dims) {
        return Err(HeaderError::BadDimCount { name: name.to_string(), n_dims });
    }
    let mut dims = Vec::with_capacity(4);
    for index in 0..n_dims as usize {
        let value = src.u64(name)?;
        if value == 0 || value > MAX_ELEMENTS {
            return Err(HeaderError::BadDim { name: name.to_string(), index, value });
        }
        dims.push(value);
    }
    Ok(dims)
}

fn element_count(name: &str, dims: &[u64]) -> Result<u64> {
    dims.iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| HeaderError::ElementOverflow { name: name.to_string(), dims: dims.to_vec() })
}

fn read_type<R: Read>(src: &mut Src<R>, name: &str) -> Result<GgmlType> {
    let type_id = src.u32(name)?;
    GgmlType::classify(type_id).map_err(|e| {
        let name = name.to_string();
        match e {
            TypeIdError::Removed => HeaderError::RemovedType { name, type_id },
            TypeIdError::Unknown => HeaderError::UnknownType { name, type_id },
        }
    })
}

fn byte_size(name: &str, t: GgmlType, dims: &[u64], n_elements: u64) -> Result<u64> {
    let (block, size) = t.block_layout();
    let row = dims.first().copied().unwrap_or(0);
    if row % block != 0 {
        return Err(HeaderError::RowNotBlockMultiple { name: name.to_string(), type_name: t.name(), row, block });
    }
    (n_elements / block).checked_mul(size).ok_or_else(|| HeaderError::SizeOverflow { name: name.to_string() })
}

fn alignment_of(metadata: &BTreeMap<String, Value>) -> Result<u64> {
    match metadata.get("general.alignment") {
        None => Ok(DEFAULT_ALIGNMENT),
        Some(Value::U32(v)) if v.is_power_of_two() => Ok(u64::from(*v)),
        Some(Value::U32(v)) => Err(HeaderError::BadAlignment { value: *v }),
        Some(other) => Err(HeaderError::AlignmentType { found: other.type_name() }),
    }
}

/// Rounds `v` up to a multiple of `align` (a power of two), or `None` on overflow.
pub(crate) fn align_up(v: u64, align: u64) -> Option<u64> {
    let mask = align.checked_sub(1)?;
    v.checked_add(mask).map(|x| x & !mask)
}

fn data_start(header_end: u64, alignment: u64, has_tensors: bool, file_size: u64) -> Result<u64> {
    // llama.cpp only pads to the data section when there is tensor data.
    let start = if has_tensors { align_up(header_end, alignment) } else { Some(header_end) };
    match start {
        Some(s) if s <= file_size => Ok(s),
        _ => Err(HeaderError::DataPastEof { data_offset: start.unwrap_or(u64::MAX), file_size }),
    }
}

/// Checks each tensor's region: aligned, inside the file, and laid out the
/// way llama.cpp demands (in order, each padded to the alignment, so regions
/// can neither overlap nor leave gaps).
fn place_tensors(raw: Vec<TensorInfo>, data_offset: u64, alignment: u64, file_size: u64) -> Result<Vec<TensorInfo>> {
    let mut expected = 0u64;
    let mut out = Vec::with_capacity(raw.len());
    for info in raw {
        check_region(&info, data_offset, alignment, file_size)?;
        if info.offset < expected {
            return Err(HeaderError::TensorOverlap { name: info.name, offset: info.offset, expected });
        }
        if info.offset > expected {
            return Err(HeaderError::TensorGap { name: info.name, offset: info.offset, expected });
        }
        expected = info
            .offset
            .checked_add(info.n_bytes)
            .and_then(|e| align_up(e, alignment))
            .ok_or_else(|| HeaderError::SizeOverflow { name: info.name.clone() })?;
        out.push(info);
    }
    Ok(out)
}

fn check_region(info: &TensorInfo, data_offset: u64, alignment: u64, file_size: u64) -> Result<()> {
    // alignment is a power of two, so a mask test is exact.
    if info.offset & (alignment - 1) != 0 {
        return Err(HeaderError::MisalignedOffset { name: info.name.clone(), offset: info.offset, alignment });
    }
    let end = data_offset.checked_add(info.offset).and_then(|s| s.checked_add(info.n_bytes));
    match end {
        Some(e) if e <= file_size => Ok(()),
        _ => Err(HeaderError::TensorPastEof { name: info.name.clone(), end: end.unwrap_or(u64::MAX), file_size }),
    }
}
