//! Header reader: round trips through the writer and one test per refusal.

use std::io::Cursor;

use augur_gguf::writer::{tiny_llama, GgufWriter, Layout, TinyLlamaOpts};
use augur_gguf::{parse, read_file, Array, GgmlType, GgufError, GgufFile, HeaderError, Value};
use proptest::prelude::*;

fn base() -> (Vec<u8>, Layout) {
    tiny_llama(&TinyLlamaOpts::default()).to_bytes_with_layout()
}

fn parse_bytes(b: &[u8]) -> Result<GgufFile, GgufError> {
    parse(Cursor::new(b), b.len() as u64)
}

fn header_err(b: &[u8]) -> HeaderError {
    match parse_bytes(b) {
        Ok(_) => panic!("hostile bytes were accepted"),
        Err(GgufError::Header(h)) => h,
        Err(other) => panic!("unexpected error kind: {other}"),
    }
}

fn patch(b: &[u8], pos: usize, new: &[u8]) -> Vec<u8> {
    let mut b = b.to_vec();
    b[pos..pos + new.len()].copy_from_slice(new);
    b
}

fn kv<'a>(l: &'a Layout, key: &str) -> &'a augur_gguf::writer::KvPos {
    l.kvs.iter().find(|k| k.key == key).unwrap()
}

#[test]
fn tiny_llama_round_trips() {
    let w = tiny_llama(&TinyLlamaOpts::default());
    let (b, l) = w.to_bytes_with_layout();
    let f = parse_bytes(&b).unwrap();
    assert_eq!(f.version, 3);
    assert_eq!(f.alignment, 32);
    assert_eq!(f.data_offset, l.data_offset as u64);
    assert_eq!(f.data_offset % 32, 0);
    assert_eq!(f.file_size, b.len() as u64);
    assert_eq!(f.arch(), Some("llama"));
    assert_eq!(f.name(), Some("tiny-llama"));
    assert_eq!(f.block_count(), Some(2));
    assert_eq!(f.context_length(), Some(256));
    assert_eq!(f.vocab_size(), Some(300));
    assert_eq!(f.quant_label(), "F32");
    assert!(f.chat_template().unwrap().contains("<|im_start|>"));
    assert_eq!(f.get_u64("llama.embedding_length"), Some(64));
    assert!((f.get_f64("llama.attention.layer_norm_rms_epsilon").unwrap() - 1e-5).abs() < 1e-9);
    assert_eq!(f.get_f64("llama.block_count"), Some(2.0));
    assert_eq!(f.tensors.len(), 3 + 2 * 9);
    let embd = &f.tensors[0];
    assert_eq!((embd.name.as_str(), embd.dims.as_slice()), ("token_embd.weight", &[64u64, 300][..]));
    assert_eq!(embd.ggml_type, GgmlType::F32);
    assert_eq!(embd.n_bytes, 64 * 300 * 4);
    let expected: u64 = 2 * 64 * 300 + 64 + 2 * (2 * 64 + 2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 128);
    assert_eq!(f.param_count(), expected);
    for t in &f.tensors {
        assert_eq!(t.offset % 32, 0, "{}", t.name);
    }
    let last = f.tensors.last().unwrap();
    assert_eq!(f.data_offset + last.offset + last.n_bytes, f.file_size);
}

#[test]
fn writer_round_trips_every_value_type() {
    let mut w = GgufWriter::new();
    let values = vec![
        ("a.u8", Value::U8(7)),
        ("a.i8", Value::I8(-7)),
        ("a.u16", Value::U16(700)),
        ("a.i16", Value::I16(-700)),
        ("a.u32", Value::U32(70000)),
        ("a.i32", Value::I32(-70000)),
        ("a.f32", Value::F32(1.5)),
        ("a.bool", Value::Bool(true)),
        ("a.str", Value::String("héllo".into())),
        ("a.u64", Value::U64(1 << 40)),
        ("a.i64", Value::I64(-(1 << 40))),
        ("a.f64", Value::F64(-2.25)),
        ("b.u8", Value::Array(Array::U8(vec![1, 2]))),
        ("b.i16", Value::Array(Array::I16(vec![-1, 2]))),
        ("b.f32", Value::Array(Array::F32(vec![0.5, -0.5]))),
        ("b.bool", Value::Array(Array::Bool(vec![true, false]))),
        ("b.str", Value::Array(Array::String(vec!["x".into(), String::new()]))),
        ("b.u64", Value::Array(Array::U64(vec![u64::MAX]))),
        ("b.f64", Value::Array(Array::F64(vec![]))),
    ];
    for (k, v) in &values {
        w.add(k, v.clone());
    }
    w.add_f16("h", &[4], &[1.0, -2.0, 0.5, 65504.0]);
    w.add_f32("g", &[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let f = parse_bytes(&w.to_bytes()).unwrap();
    for (k, v) in &values {
        assert_eq!(f.get(k), Some(v), "{k}");
    }
    assert_eq!(f.tensors[0].ggml_type, GgmlType::F16);
    assert_eq!(f.tensors[0].n_bytes, 8);
    assert_eq!(f.tensors[1].offset, 32);
    assert_eq!(f.get_u64("a.i8"), None);
    assert_eq!(f.get_u64("a.u16"), Some(700));
    assert_eq!(f.get_str("a.u8"), None);
    assert_eq!(f.quant_label(), "F32");
}

#[test]
fn header_only_file_without_tensors_parses() {
    let mut w = GgufWriter::new();
    w.add("general.architecture", Value::String("llama".into()));
    let b = w.to_bytes();
    let f = parse_bytes(&b).unwrap();
    assert!(f.tensors.is_empty());
    assert_eq!(f.data_offset, b.len() as u64);
}

#[test]
fn version_2_is_accepted() {
    let (b, _) = base();
    let f = parse_bytes(&patch(&b, 4, &2u32.to_le_bytes())).unwrap();
    assert_eq!(f.version, 2);
}

#[test]
fn quant_label_uses_file_type_then_dominant_type() {
    let mut w = tiny_llama(&TinyLlamaOpts::default());
    w.set("general.file_type", Value::U32(15));
    assert_eq!(parse_bytes(&w.to_bytes()).unwrap().quant_label(), "Q4_K_M");
    w.remove("general.file_type");
    assert_eq!(parse_bytes(&w.to_bytes()).unwrap().quant_label(), "F32");
    let mut w = GgufWriter::new();
    w.add_f16("a", &[2, 2], &[0.0; 4]).add_f16("b", &[2, 2], &[0.0; 4]).add_f32("n", &[2], &[0.0; 2]);
    assert_eq!(parse_bytes(&w.to_bytes()).unwrap().quant_label(), "F16");
}

#[test]
fn read_file_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.gguf");
    let e = read_file(&missing).unwrap_err();
    assert!(matches!(e, GgufError::NotFound { .. }));
    assert!(e.to_string().contains("nope.gguf"), "{e}");

    let junk = dir.path().join("junk.gguf");
    std::fs::write(&junk, b"PK\x03\x04 this is a zip").unwrap();
    let e = read_file(&junk).unwrap_err();
    assert!(matches!(e.header(), Some(HeaderError::BadMagic { .. })), "{e}");
    assert!(e.to_string().contains("junk.gguf") && e.to_string().contains("not a GGUF"), "{e}");

    let (b, _) = base();
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &b[..b.len() / 3]).unwrap();
    let e = read_file(&cut).unwrap_err();
    assert!(e.to_string().contains("cut.gguf"), "{e}");
    assert!(
        matches!(
            e.header(),
            Some(
                HeaderError::StringPastEof { .. }
                    | HeaderError::Truncated { .. }
                    | HeaderError::ArrayPastEof { .. }
                    | HeaderError::TensorPastEof { .. }
            )
        ),
        "{e}"
    );

    let short = dir.path().join("short.gguf");
    std::fs::write(&short, b"GGUF\x03\0").unwrap();
    let e = read_file(&short).unwrap_err();
    assert!(matches!(e.header(), Some(HeaderError::Truncated { .. })), "{e}");
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[test]
fn write_to_writes_atomically_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    tiny_llama(&TinyLlamaOpts::default()).write_to(&path).unwrap();
    let f = read_file(&path).unwrap();
    assert_eq!(f.arch(), Some("llama"));
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "temp file left behind: {names:?}");
}

#[test]
fn ggml_type_table_matches_ggml() {
    let known = [
        (GgmlType::F32, 1, 4),
        (GgmlType::F16, 1, 2),
        (GgmlType::BF16, 1, 2),
        (GgmlType::Q4_0, 32, 18),
        (GgmlType::Q8_0, 32, 34),
        (GgmlType::Q4_K, 256, 144),
        (GgmlType::Q5_K, 256, 176),
        (GgmlType::Q6_K, 256, 210),
        (GgmlType::IQ4_XS, 256, 136),
        (GgmlType::MXFP4, 32, 17),
    ];
    for (t, block, size) in known {
        assert_eq!(t.block_layout(), (block, size), "{t}");
        assert_eq!(GgmlType::from_id(t.id()), Some(t));
    }
    let supported = (0..64).filter(|&id| GgmlType::from_id(id).is_some()).count();
    assert_eq!(supported, 35);
    for removed in [4, 5, 31, 32, 33, 36, 37, 38, 43] {
        assert_eq!(GgmlType::from_id(removed), None);
    }
}

#[test]
fn bad_magic() {
    let (b, _) = base();
    assert!(matches!(header_err(&patch(&b, 0, b"GGML")), HeaderError::BadMagic { .. }));
    let msg = header_err(&patch(&b, 0, b"\0\0\0\0")).to_string();
    assert!(msg.contains("GGUF"), "{msg}");
}

#[test]
fn bad_versions() {
    let (b, _) = base();
    for v in [0u32, 1, 4, 0x0300_0000, u32::MAX] {
        match header_err(&patch(&b, 4, &v.to_le_bytes())) {
            HeaderError::Version { version, .. } => assert_eq!(version, v),
            e => panic!("version {v}: {e}"),
        }
    }
    let msg = header_err(&patch(&b, 4, &1u32.to_le_bytes())).to_string();
    assert!(msg.contains("v1"), "{msg}");
    let msg = header_err(&patch(&b, 4, &4u32.to_le_bytes())).to_string();
    assert!(msg.contains("newer"), "{msg}");
}

#[test]
fn absurd_counts() {
    let (b, _) = base();
    for n in [1u64 << 63, u64::MAX, 1 << 40] {
        let e = header_err(&patch(&b, 8, &n.to_le_bytes()));
        assert!(matches!(e, HeaderError::ImplausibleCount { what: "tensor", .. }), "{e}");
        let e = header_err(&patch(&b, 16, &n.to_le_bytes()));
        assert!(matches!(e, HeaderError::ImplausibleCount { .. }), "{e}");
        assert!(e.to_string().contains(&n.to_string()), "{e}");
    }
}

#[test]
fn string_lengths() {
    let (b, l) = base();
    let start = kv(&l, "general.architecture").start;
    let e = header_err(&patch(&b, start, &(b.len() as u64).to_le_bytes()));
    assert!(matches!(e, HeaderError::StringPastEof { .. }), "{e}");
    let e = header_err(&patch(&b, start, &u64::MAX.to_le_bytes()));
    assert!(matches!(e, HeaderError::StringPastEof { .. }), "{e}");
    let e = header_err(&patch(&b, start + 8, &[0xff]));
    assert!(matches!(e, HeaderError::InvalidUtf8 { .. }), "{e}");
    let val = kv(&l, "general.name").value_pos;
    let e = header_err(&patch(&b, val + 8, &[0xc3, 0x28]));
    assert!(matches!(e, HeaderError::InvalidUtf8 { .. }), "{e}");
}

#[test]
fn string_cap_applies_even_when_file_is_large_enough() {
    let mut w = GgufWriter::new();
    w.add("big", Value::String("x".repeat((64 << 20) + 1)));
    let e = header_err(&w.to_bytes());
    assert!(matches!(e, HeaderError::StringTooLong { .. }), "{e}");
}

#[test]
fn value_types_and_arrays() {
    let (b, l) = base();
    let name = kv(&l, "general.name");
    let e = header_err(&patch(&b, name.type_pos, &13u32.to_le_bytes()));
    assert!(matches!(e, HeaderError::UnknownValueType { type_id: 13, .. }), "{e}");
    let tokens = kv(&l, "tokenizer.ggml.tokens").value_pos;
    let e = header_err(&patch(&b, tokens, &9u32.to_le_bytes()));
    assert!(matches!(e, HeaderError::NestedArray { .. }), "{e}");
    for n in [u64::MAX, 1 << 62, 10_000_000] {
        let e = header_err(&patch(&b, tokens + 4, &n.to_le_bytes()));
        assert!(matches!(e, HeaderError::ArrayPastEof { .. }), "{n}: {e}");
    }
    let add_bos = kv(&l, "tokenizer.ggml.add_bos_token").value_pos;
    let e = header_err(&patch(&b, add_bos, &[2]));
    assert!(matches!(e, HeaderError::BadBool { byte: 2, .. }), "{e}");
}

#[test]
fn duplicate_and_empty_keys() {
    let mut w = tiny_llama(&TinyLlamaOpts::default());
    w.add("general.name", Value::String("x".into()));
    assert!(matches!(header_err(&w.to_bytes()), HeaderError::DuplicateKey { .. }));
    let mut w = tiny_llama(&TinyLlamaOpts::default());
    w.add("", Value::U8(0));
    assert!(matches!(header_err(&w.to_bytes()), HeaderError::EmptyKey { .. }));
}

#[test]
fn alignment_checks() {
    let mut w = tiny_llama(&TinyLlamaOpts::default());
    w.set("general.alignment", Value::U32(32));
    let (b, l) = w.to_bytes_with_layout();
    assert_eq!(parse_bytes(&b).unwrap().alignment, 32);
    let pos = kv(&l, "general.alignment").value_pos;
    for a in [0u32, 3, 48] {
        let e = header_err(&patch(&b, pos, &a.to_le_bytes()));
        assert!(matches!(e, HeaderError::BadAlignment { value } if value == a), "{e}");
    }
    w.set("general.alignment", Value::U64(32));
    assert!(matches!(header_err(&w.to_bytes()), HeaderError::AlignmentType { found: "u64" }));
    let mut w = tiny_llama(&TinyLlamaOpts::default());
    w.set("general.alignment", Value::U32(64));
    let f = parse_bytes(&w.to_bytes()).unwrap();
    assert_eq!((f.alignment, f.data_offset % 64), (64, 0));
}

#[test]
fn tensor_shape_checks() {
    let (b, l) = base();
    let t = &l.tensors[1];
    for n in [0u32, 5] {
        let e = header_err(&patch(&b, t.n_dims_pos, &n.to_le_bytes()));
        assert!(matches!(e, HeaderError::BadDimCount { n_dims, .. } if n_dims == n), "{e}");
    }
    let e = header_err(&patch(&b, t.dims_pos, &0u64.to_le_bytes()));
    assert!(matches!(e, HeaderError::BadDim { value: 0, .. }), "{e}");
    let e = header_err(&patch(&b, t.dims_pos, &u64::MAX.to_le_bytes()));
    assert!(matches!(e, HeaderError::BadDim { .. }), "{e}");
    let embd = &l.tensors[0];
    let mut dims = (1u64 << 32).to_le_bytes().to_vec();
    dims.extend((1u64 << 32).to_le_bytes());
    let e = header_err(&patch(&b, embd.dims_pos, &dims));
    assert!(matches!(e, HeaderError::ElementOverflow { .. }), "{e}");
    let mut dims = (1u64 << 61).to_le_bytes().to_vec();
    dims.extend(2u64.to_le_bytes());
    let e = header_err(&patch(&b, embd.dims_pos, &dims));
    assert!(matches!(e, HeaderError::SizeOverflow { .. } | HeaderError::TensorPastEof { .. }), "{e}");
}

#[test]
fn tensor_type_checks() {
    let (b, l) = base();
    let t = &l.tensors[1];
    for ty in [43u32, 1000, u32::MAX] {
        let e = header_err(&patch(&b, t.type_pos, &ty.to_le_bytes()));
        assert!(matches!(e, HeaderError::UnknownType { .. }), "{e}");
    }
    for ty in [4u32, 5, 31, 32, 33, 36, 37, 38] {
        let e = header_err(&patch(&b, t.type_pos, &ty.to_le_bytes()));
        assert!(matches!(e, HeaderError::RemovedType { .. }), "{e}");
    }
    let e = header_err(&patch(&b, t.type_pos, &(GgmlType::Q4_K.id()).to_le_bytes()));
    assert!(matches!(e, HeaderError::RowNotBlockMultiple { row: 64, block: 256, .. }), "{e}");
}

#[test]
fn tensor_offset_checks() {
    let (b, l) = base();
    let t = &l.tensors[2];
    let off = u64::from_le_bytes(b[t.offset_pos..t.offset_pos + 8].try_into().unwrap());
    let e = header_err(&patch(&b, t.offset_pos, &(off + 1).to_le_bytes()));
    assert!(matches!(e, HeaderError::MisalignedOffset { .. }), "{e}");
    let e = header_err(&patch(&b, t.offset_pos, &(b.len() as u64 + 32).to_le_bytes()));
    assert!(matches!(e, HeaderError::TensorPastEof { .. }), "{e}");
    let e = header_err(&patch(&b, t.offset_pos, &(u64::MAX - 31).to_le_bytes()));
    assert!(matches!(e, HeaderError::TensorPastEof { .. }), "{e}");
    let e = header_err(&patch(&b, t.offset_pos, &0u64.to_le_bytes()));
    assert!(matches!(e, HeaderError::TensorOverlap { .. }), "{e}");
    let e = header_err(&patch(&b, t.offset_pos, &(off + 32).to_le_bytes()));
    assert!(matches!(e, HeaderError::TensorGap { .. }), "{e}");
    let e = header_err(&b[..b.len() - 1]);
    assert!(matches!(e, HeaderError::TensorPastEof { .. }), "{e}");
}

#[test]
fn tensor_names() {
    let mut w = tiny_llama(&TinyLlamaOpts::default());
    w.rename_tensor("output.weight", "token_embd.weight");
    assert!(matches!(header_err(&w.to_bytes()), HeaderError::DuplicateTensor { .. }));
    let mut w = tiny_llama(&TinyLlamaOpts::default());
    w.rename_tensor("output.weight", &"n".repeat(64));
    assert!(matches!(header_err(&w.to_bytes()), HeaderError::TensorNameTooLong { len: 64, .. }));
}

#[test]
fn every_truncation_of_the_header_fails() {
    let (b, l) = base();
    for cut in 0..l.data_offset + 64 {
        assert!(parse_bytes(&b[..cut]).is_err(), "cut at {cut} accepted");
    }
}

#[test]
fn lying_file_size_is_truncation_not_panic() {
    let (b, _) = base();
    let e = parse(Cursor::new(&b[..1000]), b.len() as u64).unwrap_err();
    assert!(matches!(e.header(), Some(HeaderError::Truncated { .. })), "{e}");
}

fn small_file() -> Vec<u8> {
    let opts = TinyLlamaOpts { n_embd: 8, n_layer: 1, n_head: 2, n_head_kv: 1, n_ff: 16, ..TinyLlamaOpts::default() };
    tiny_llama(&opts).to_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn truncation_never_parses(frac in 0.0f64..1.0) {
        let b = small_file();
        let cut = ((b.len() as f64) * frac) as usize;
        prop_assert!(parse_bytes(&b[..cut.min(b.len() - 1)]).is_err());
    }

    #[test]
    fn bit_flips_never_panic(flips in proptest::collection::vec((any::<usize>(), 0u8..8), 1..8)) {
        let mut b = small_file();
        let header_len = 16 * 1024;
        for (pos, bit) in flips {
            let i = pos % header_len.min(b.len());
            b[i] ^= 1 << bit;
        }
        if let Ok(f) = parse_bytes(&b) {
            let _ = augur_gguf::validate_model(&f, &[]);
            let _ = (f.quant_label(), f.param_count(), f.vocab_size());
        }
    }

    #[test]
    fn random_bytes_never_panic(mut tail in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut b = b"GGUF\x03\0\0\0".to_vec();
        b.append(&mut tail);
        let _ = parse_bytes(&b);
    }
}
