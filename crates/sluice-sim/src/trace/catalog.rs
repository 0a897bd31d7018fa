//! The GPU catalogue: the GPU workload classes that trace functions are mapped onto, and the mapping itself.
//!
//! The builtin catalogue is `config/catalog.toml` (compiled in); its numbers are assumptions to calibrate on a
//! real GPU. This module owns the class table, its validation, the deterministic name → class assignment and
//! the rule that turns a trace function's CPU timings into a GPU [`FunctionProfile`] (see docs/traces.md).

use super::error::TraceError;
use crate::workload::FunctionProfile;
use serde::{Deserialize, Serialize};
use sluice_core::Dur;
use std::path::Path;

const BUILTIN: &str = include_str!("../../../../config/catalog.toml");

/// The GPU workload classes, in a fixed order (the order decides [`Catalog::class_for`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// The classes, at least one, with unique names; their order decides the name → class mapping.
    pub classes: Vec<GpuClass>,
}

/// One GPU workload class, e.g. squeezenet inference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuClass {
    /// The class's name, as written in a `poisson:` spec and recorded in
    /// [`FunctionProfile::class`]: non-empty, without whitespace or any of `, ; = :`.
    pub name: String,
    /// GPU warm time = CPU warm time / speedup.
    pub speedup: f64,
    /// Device memory held by a warm sandbox, MiB.
    pub gpu_mem_mb: f64,
    /// CUDA context plus model load onto the device, added to every cold start, ms.
    pub gpu_init_ms: f64,
    /// Sandbox creation (process, namespaces, runtime start) before CUDA init, ms.
    pub container_start_ms: f64,
    /// Warm CPU time, used for synthetic (Poisson) functions of this class, ms.
    pub cpu_warm_ms: f64,
}

/// What an empty catalogue (which [`Catalog::validate`] rejects) maps every name onto: a neutral class.
static NEUTRAL: GpuClass = GpuClass {
    name: String::new(),
    speedup: 1.0,
    gpu_mem_mb: 0.0,
    gpu_init_ms: 0.0,
    container_start_ms: 0.0,
    cpu_warm_ms: 0.0,
};

impl Catalog {
    /// The catalogue compiled in from `config/catalog.toml`.
    pub fn builtin() -> Catalog {
        // The embedded file is a constant checked by the `builtin_catalogue_is_valid` test, not input.
        Catalog::from_toml_str(BUILTIN).expect("config/catalog.toml is a valid catalogue")
    }

    /// Parses and validates a catalogue written in TOML (`[[classes]]` tables).
    pub fn from_toml_str(text: &str) -> Result<Catalog, TraceError> {
        let catalog: Catalog =
            toml::from_str(text).map_err(|e| TraceError::Catalog(e.to_string()))?;
        catalog.validate()?;
        Ok(catalog)
    }

    /// Reads, parses and validates a catalogue file.
    pub fn load(path: &Path) -> Result<Catalog, TraceError> {
        let text = std::fs::read_to_string(path).map_err(|source| TraceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Catalog::from_toml_str(&text).map_err(|e| match e {
            TraceError::Catalog(msg) => TraceError::Catalog(format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    /// Checks that there is at least one class, that names are unique and usable in a `poisson:` spec, and that
    /// every number is finite, non-negative, and the speedup positive.
    pub fn validate(&self) -> Result<(), TraceError> {
        let bad = |msg: String| Err(TraceError::Catalog(msg));
        if self.classes.is_empty() {
            return bad("no classes: expected at least one [[classes]] table".into());
        }
        for (i, c) in self.classes.iter().enumerate() {
            let ok_name = !c.name.is_empty()
                && !c
                    .name
                    .chars()
                    .any(|ch| ch.is_whitespace() || ",;=:".contains(ch));
            if !ok_name {
                return bad(format!(
                    "class {}: name `{}` must be non-empty, without spaces or any of , ; = :",
                    i + 1,
                    c.name
                ));
            }
            if self.classes[..i].iter().any(|o| o.name == c.name) {
                return bad(format!("class `{}` is defined more than once", c.name));
            }
            if !(c.speedup.is_finite() && c.speedup > 0.0) {
                return bad(format!(
                    "class `{}`: speedup must be a positive number",
                    c.name
                ));
            }
            let fields = [
                ("gpu_mem_mb", c.gpu_mem_mb),
                ("gpu_init_ms", c.gpu_init_ms),
                ("container_start_ms", c.container_start_ms),
                ("cpu_warm_ms", c.cpu_warm_ms),
            ];
            for (field, v) in fields {
                if !(v.is_finite() && v >= 0.0) {
                    return bad(format!(
                        "class `{}`: {field} must be a non-negative number",
                        c.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// The class a trace function is mapped onto: FNV-1a 64 of its name, modulo the number of classes.
    pub fn class_for(&self, function_name: &str) -> &GpuClass {
        let n = self.classes.len() as u64;
        if n == 0 {
            return &NEUTRAL;
        }
        let i = fnv1a64(function_name.as_bytes()) % n;
        self.classes.get(i as usize).unwrap_or(&NEUTRAL)
    }

    /// The class called `class`.
    pub fn get(&self, class: &str) -> Option<&GpuClass> {
        self.classes.iter().find(|c| c.name == class)
    }

    /// The class names, comma-separated, for error messages.
    pub fn names(&self) -> String {
        let names: Vec<&str> = self.classes.iter().map(|c| c.name.as_str()).collect();
        names.join(", ")
    }
}

impl GpuClass {
    /// The GPU profile of function `name` mapped onto this class, given its warm CPU time as the
    /// trace reports it: `gpu_warm = cpu_warm / speedup` (at least 1 µs),
    /// `cold_start = container_start_ms + gpu_init_ms`, `gpu_mem_bytes = gpu_mem_mb MiB`.
    pub fn profile(&self, name: &str, cpu_warm: Dur) -> FunctionProfile {
        let gpu_warm = cpu_warm
            .mul_f64(1.0 / self.speedup)
            .max(Dur::from_micros(1));
        FunctionProfile {
            name: name.to_string(),
            class: self.name.clone(),
            gpu_warm,
            cpu_warm,
            cold_start: Dur::from_millis_f64(self.container_start_ms + self.gpu_init_ms),
            gpu_mem_bytes: (self.gpu_mem_mb * 1024.0 * 1024.0).round() as u64,
        }
    }
}

/// FNV-1a, 64-bit.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalogue_is_valid() {
        let c = Catalog::builtin();
        assert_eq!(c.classes.len(), 8);
        let sq = c.get("squeezenet").expect("squeezenet");
        assert_eq!(
            (sq.speedup, sq.gpu_mem_mb, sq.gpu_init_ms),
            (4.0, 1000.0, 2500.0)
        );
        assert_eq!(c.get("rodinia").map(|r| r.cpu_warm_ms), Some(1500.0));
    }

    #[test]
    fn fnv_matches_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn class_for_is_deterministic_and_total() {
        let c = Catalog::builtin();
        assert_eq!(c.class_for("abc").name, c.class_for("abc").name);
        let empty = Catalog { classes: vec![] };
        assert_eq!(empty.class_for("abc").speedup, 1.0);
        assert!(empty.validate().is_err());
    }

    #[test]
    fn validation_rejects_bad_classes() {
        let mut c = Catalog::builtin();
        c.classes[1].speedup = 0.0;
        assert!(c.validate().unwrap_err().to_string().contains("speedup"));
        let mut c = Catalog::builtin();
        c.classes[1].name = "squeezenet".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("more than once"));
        let err = Catalog::from_toml_str("[[classes]]\nname = \"x\"\nspeed = 1\n").unwrap_err();
        assert!(err.to_string().contains("speed"), "{err}");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "classes = []\n").expect("write");
        let err = Catalog::load(&path).expect_err("empty").to_string();
        assert!(
            err.starts_with("invalid GPU catalogue: ") && err.contains("c.toml: no classes"),
            "{err}"
        );
    }

    #[test]
    fn profile_follows_the_mapping_rule() {
        let c = Catalog::builtin();
        let sq = c.get("squeezenet").expect("squeezenet");
        let p = sq.profile("f", Dur::from_millis(100));
        assert_eq!(p.gpu_warm, Dur::from_millis(25));
        assert_eq!(p.cold_start, Dur::from_millis(600 + 2500));
        assert_eq!(p.gpu_mem_bytes, 1000 << 20);
        let p = sq.profile("f", Dur::ZERO);
        assert_eq!(p.gpu_warm, Dur::from_micros(1));
        assert_eq!(p.cold_start, Dur::from_millis(600 + 2500));
    }
}
