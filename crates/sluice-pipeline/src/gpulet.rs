//! Import of the Gpu-let multi-model applications (`traffic.json`, `game.json`) as pipeline
//! specs. This module owns the mapping from their format to [`PipelineSpec`]:
//! - one stage per entry of `Models`, named by its `model` field (`lenet3`), with the profile key
//!   it maps to (`lenet`: the name, or the longest `UTIL.CSV` model it extends with digits);
//! - `after` from `input` IDs that are other models; IDs of `Input` entries mean the pipeline
//!   input;
//! - `slo_ms` = the longest source→sink path's sum of per-model `SLO`s;
//! - `output_kb` of a stage = the size of the pipeline input it descends from (the consumers
//!   take crops/frames of that image; `InputDim` × 4 bytes for FP32, 2 for FP16);
//! - `memory_mb` from `mem-config.json` beside the file when present; `max_batch` as given;
//!   `max_wait_ms` and `handoff` keep the spec defaults.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::profile::{read, ProfileError, Profiles};
use crate::spec::{PipelineSpec, StageSpec};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct App {
    name: String,
    input: Vec<AppInput>,
    models: Vec<AppModel>,
}

#[derive(Deserialize)]
struct AppInput {
    #[serde(rename = "ID")]
    id: u32,
    #[serde(rename = "InputDim")]
    dims: Vec<u64>,
    #[serde(rename = "InputType", default)]
    kind: String,
}

#[derive(Deserialize)]
struct AppModel {
    #[serde(rename = "ID")]
    id: u32,
    input: Vec<u32>,
    model: String,
    max_batch: u32,
    #[serde(rename = "SLO")]
    slo: f64,
}

/// Reads a Gpu-let application file into a validated spec.
pub fn load_app(path: &Path) -> Result<PipelineSpec, ProfileError> {
    let what = path.display().to_string();
    let app: App = serde_json::from_str(&read(path)?).map_err(|e| ProfileError::Invalid {
        what: what.clone(),
        problem: e.to_string(),
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let profiles = Profiles::load_gpulet(dir).ok();
    let memory = read_memory(dir);
    let invalid = |problem: String| ProfileError::Invalid {
        what: what.clone(),
        problem,
    };

    let by_id: BTreeMap<u32, &AppModel> = app.models.iter().map(|m| (m.id, m)).collect();
    let inputs: BTreeMap<u32, &AppInput> = app.input.iter().map(|i| (i.id, i)).collect();
    // The pipeline input each model descends from (first found along its inputs).
    fn origin(
        id: u32,
        by_id: &BTreeMap<u32, &AppModel>,
        inputs: &BTreeMap<u32, &AppInput>,
        depth: usize,
    ) -> Option<u32> {
        if inputs.contains_key(&id) {
            return Some(id);
        }
        let m = by_id.get(&id)?;
        if depth > by_id.len() {
            return None;
        }
        m.input
            .iter()
            .find_map(|&i| origin(i, by_id, inputs, depth + 1))
    }

    let mut stages = Vec::with_capacity(app.models.len());
    for m in &app.models {
        let mut after = Vec::new();
        for i in &m.input {
            match (by_id.get(i), inputs.contains_key(i)) {
                (Some(p), _) => after.push(p.model.clone()),
                (None, true) => {}
                (None, false) => {
                    return Err(invalid(format!("model {} reads unknown ID {i}", m.model)));
                }
            }
        }
        let kb = origin(m.id, &by_id, &inputs, 0)
            .and_then(|o| inputs.get(&o))
            .map_or(0.0, |i| {
                let bytes = if i.kind.eq_ignore_ascii_case("FP16") {
                    2
                } else {
                    4
                };
                i.dims.iter().product::<u64>() as f64 * bytes as f64 / 1024.0
            });
        let key = profiles
            .as_ref()
            .and_then(|p| p.key_for(&m.model))
            .unwrap_or(&m.model)
            .to_string();
        stages.push(StageSpec {
            name: m.model.clone(),
            command: Vec::new(),
            image: None,
            env: BTreeMap::new(),
            model: (key != m.model).then_some(key),
            after,
            max_batch: m.max_batch,
            max_wait_ms: 5.0,
            memory_mb: memory.get(&m.model).copied().unwrap_or(0),
            output_kb: kb,
            handoff: vec![crate::spec::Handoff::Shm, crate::spec::Handoff::Copy],
        });
    }
    let mut spec = PipelineSpec {
        name: app.name,
        slo_ms: 1.0,
        load_rps: 0.0,
        stages,
    };
    let order = spec.topo_order().map_err(|e| invalid(e.to_string()))?;
    let slo_of: BTreeMap<&str, f64> = app
        .models
        .iter()
        .map(|m| (m.model.as_str(), m.slo))
        .collect();
    let mut path_ms = vec![0.0_f64; spec.stages.len()];
    for &s in &order {
        let before = spec
            .predecessors(s)
            .into_iter()
            .map(|p| path_ms[p])
            .fold(0.0, f64::max);
        path_ms[s] = before
            + slo_of
                .get(spec.stages[s].name.as_str())
                .copied()
                .unwrap_or(0.0);
    }
    spec.slo_ms = path_ms.into_iter().fold(0.0, f64::max);
    spec.validate().map_err(|e| invalid(e.to_string()))?;
    Ok(spec)
}

fn read_memory(dir: &Path) -> BTreeMap<String, u64> {
    #[derive(Deserialize)]
    struct Entry {
        name: String,
        mem: u64,
    }
    #[derive(Deserialize)]
    struct File {
        models: Vec<Entry>,
    }
    read(&dir.join("mem-config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<File>(&t).ok())
        .map(|f| f.models.into_iter().map(|e| (e.name, e.mem)).collect())
        .unwrap_or_default()
}
