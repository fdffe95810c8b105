//! Count a GGUF file's tensors by type: which kernels its matmuls will use.
//!
//! usage: tensor_types MODEL.gguf
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: tensor_types MODEL.gguf")?;
    let file = augur_gguf::read_file(std::path::Path::new(&path))?;
    let mut counts = std::collections::BTreeMap::<String, (usize, Vec<String>)>::new();
    for t in &file.tensors {
        let e = counts.entry(format!("{:?}", t.ggml_type)).or_default();
        e.0 += 1;
        if e.1.len() < 4 {
            e.1.push(t.name.clone());
        }
    }
    for (ty, (n, names)) in counts {
        println!("{ty:>8} {n:>4}  e.g. {}", names.join(", "));
    }
    Ok(())
}
