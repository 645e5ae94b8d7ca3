//! The run directory (format version 1, docs/run-directory.md): paths, atomic writes and
//! checkpoints.
//!
//! ```text
//! runs/<name>/
//!   config.toml          resolved configuration
//!   metrics.csv          one row per evaluation step and set
//!   shots.csv            accuracy per shot
//!   summary.json         final and early-stopped metrics (written at the end)
//!   DONE                 written last, when the run has finished
//!   checkpoints/step_<N>/{model.safetensors, optimizer.safetensors, state.json, DONE}
//!   checkpoints/best_ood/{model.safetensors, state.json, DONE}
//!   checkpoints/corrupt-step_<N>/  a checkpoint that failed its checksums, set aside by resume
//!   plots/               written by `modicl train` and `modicl plot`
//! ```
//!
//! Every file is written to a temporary name and renamed into place; a checkpoint directory
//! is assembled under a temporary name, gets its `DONE` marker last, and is renamed whole.
//!
//! Every file of a checkpoint is checksummed (BLAKE3, the digest `b3sum` prints): `state.json`
//! records the checksums of the safetensors files, and `DONE` records the checksum of
//! `state.json`. Every load verifies them ([`read_state`], [`read_model`], [`read_optimizer`]),
//! so a checkpoint whose bytes changed is an error naming the file, never garbage weights.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use modicl_config::{Config, EarlyStop};
use modicl_engine::{params, AdamW, AdamWConfig, Model, ModelConfig};
use serde::{Deserialize, Serialize};

use crate::names::Checkpoint;
use crate::TrainError;

/// Version of the run-directory and checkpoint formats. Version 2 added the checksums; version
/// 1 checkpoints (no checksums) are still read, unverified.
pub const FORMAT_VERSION: u32 = 2;

/// The oldest checkpoint format this modicl reads.
pub const OLDEST_FORMAT_VERSION: u32 = 1;

/// The run directory's well-known paths.
#[derive(Clone, Debug)]
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> RunDir {
        RunDir { root: root.into() }
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.csv")
    }
    pub fn shots(&self) -> PathBuf {
        self.root.join("shots.csv")
    }
    /// The metrics of the tasks a task-count curriculum's stages add (absent without one).
    pub fn stages(&self) -> PathBuf {
        self.root.join("stages.csv")
    }
    pub fn summary(&self) -> PathBuf {
        self.root.join("summary.json")
    }
    pub fn done(&self) -> PathBuf {
        self.root.join("DONE")
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
    pub fn step_dir(&self, step: u64) -> PathBuf {
        self.checkpoints().join(format!("step_{step}"))
    }
    pub fn best_ood(&self) -> PathBuf {
        self.checkpoints().join(Checkpoint::BestOod.to_string())
    }
    pub fn plots(&self) -> PathBuf {
        self.root.join("plots")
    }
    /// Whether the run has finished.
    pub fn is_done(&self) -> bool {
        self.done().is_file()
    }

    /// The resolved configuration stored in the run directory.
    pub fn read_config(&self) -> Result<Config, TrainError> {
        let path = self.config();
        let text = read_text(&path)?;
        Ok(Config::from_toml(&text, &path.display().to_string())?)
    }

    /// Steps of the complete (`DONE`-marked) `step_<N>` checkpoints, ascending.
    pub fn complete_checkpoints(&self) -> Result<Vec<u64>, TrainError> {
        let dir = self.checkpoints();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(TrainError::io(&dir, e)),
        };
        let mut steps = Vec::new();
        for e in entries {
            let e = e.map_err(|e| TrainError::io(&dir, e))?;
            let name = e.file_name();
            let Some(step) = name
                .to_str()
                .and_then(|n| n.strip_prefix("step_"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if e.path().join("DONE").is_file() {
                steps.push(step);
            }
        }
        steps.sort_unstable();
        Ok(steps)
    }

    /// Moves checkpoint `step_<step>` out of the way of resume, to `corrupt-step_<step>` (or
    /// `corrupt-step_<step>.<k>` if that name is taken), and returns where it went.
    pub fn set_aside(&self, step: u64) -> Result<PathBuf, TrainError> {
        let from = self.step_dir(step);
        let base = format!("corrupt-step_{step}");
        let mut to = self.checkpoints().join(&base);
        let mut k = 1;
        while to.exists() {
            k += 1;
            to = self.checkpoints().join(format!("{base}.{k}"));
        }
        fs::rename(&from, &to).map_err(|e| TrainError::io(&from, e))?;
        Ok(to)
    }

    /// The folders of the checkpoints that resume set aside (`corrupt-step_<N>`), by name.
    pub fn set_aside_checkpoints(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = fs::read_dir(self.checkpoints())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("corrupt-step_"))
            .map(|e| e.path())
            .collect();
        out.sort();
        out
    }

    /// The directory of checkpoint `c`, which must be complete (`DONE`-marked); `last` is the
    /// newest complete `step_<N>`.
    pub fn checkpoint(&self, c: Checkpoint) -> Result<PathBuf, TrainError> {
        let steps = self.complete_checkpoints()?;
        let dir = match c {
            Checkpoint::Last => match steps.last() {
                Some(&s) => self.step_dir(s),
                None => {
                    return Err(TrainError::NotARun(format!(
                        "{} has no complete checkpoint yet",
                        self.root.display()
                    )))
                }
            },
            Checkpoint::BestOod => self.best_ood(),
            Checkpoint::Step(s) => self.step_dir(s),
        };
        if !dir.join("DONE").is_file() {
            let what = match c {
                Checkpoint::Step(s) if !dir.exists() => format!("step {s} was not kept"),
                Checkpoint::BestOod if !dir.exists() => "there is no best_ood checkpoint".into(),
                _ => format!("{} is not complete (no DONE marker)", dir.display()),
            };
            return Err(TrainError::NotARun(format!(
                "--checkpoint {c}: {what} in {}; it has {}",
                self.root.display(),
                self.describe_checkpoints(&steps)
            )));
        }
        Ok(dir)
    }

    /// "steps 0, 1000 and best_ood", for error messages.
    fn describe_checkpoints(&self, steps: &[u64]) -> String {
        let mut names: Vec<String> = steps.iter().map(|s| s.to_string()).collect();
        if self.best_ood().join("DONE").is_file() {
            names.push(Checkpoint::BestOod.to_string());
        }
        match names.len() {
            0 => "no complete checkpoint".into(),
            1 => format!("only checkpoint {}", names[0]),
            n => format!(
                "checkpoints {} and {}",
                names[..n - 1].join(", "),
                names[n - 1]
            ),
        }
    }
}

/// Reads a UTF-8 file, naming it in the error.
pub fn read_text(path: &Path) -> Result<String, TrainError> {
    fs::read_to_string(path).map_err(|e| TrainError::io(path, e))
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, TrainError> {
    fs::read(path).map_err(|e| TrainError::io(path, e))
}

/// Writes `bytes` to `path` atomically ([`modicl_core::fs::write_atomic`]), creating its
/// folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    modicl_core::fs::write_atomic(path, bytes).map_err(|e| TrainError::io(path, e))
}

/// Small, human-readable state of a checkpoint (`state.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    pub format_version: u32,
    /// Optimizer steps taken: the weights are those after step `step`.
    pub step: u64,
    /// FNV-1a hash of the run's resolved `config.toml`.
    pub config_hash: String,
    /// The best o.o.d.-test evaluation up to this step, if any.
    pub best_ood: Option<Best>,
    /// Checksum of every other file of the checkpoint, by file name: `blake3:<hex>` (format
    /// version 2 on; empty in version 1).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
}

/// The best o.o.d.-test evaluation so far: the early-stopping point. The statistic that
/// decides is `train.early_stop` ([`EarlyStop`]): last-shot accuracy then all-shot (the
/// official), all-shot then last-shot, or loss (lowest) then last-shot; ties keep the earliest
/// step. Kept as exact counts (and, for `loss`, the f64 that `metrics.csv` holds, which JSON
/// round-trips exactly), so that a resumed run compares exactly what an uninterrupted one does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Best {
    pub step: u64,
    pub correct_last: u64,
    pub count_last: u64,
    pub correct: u64,
    pub count: u64,
    /// The o.o.d.-test loss, recorded when `train.early_stop = "loss"` and finite (absent
    /// otherwise, and from checkpoints written before it was recorded). serde_json's
    /// `float_roundtrip` reads it back to the same f64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
}

impl Best {
    /// Whether `self` beats `other` on statistic `by` (accuracies compared exactly, by
    /// cross-multiplication).
    pub fn beats(&self, other: &Best, by: EarlyStop) -> bool {
        let cmp =
            |a: u64, b: u64, c: u64, d: u64| (a as u128 * d as u128).cmp(&(c as u128 * b as u128));
        let last = cmp(
            self.correct_last,
            self.count_last,
            other.correct_last,
            other.count_last,
        );
        let all = cmp(self.correct, self.count, other.correct, other.count);
        let order = match by {
            EarlyStop::AccLast => last.then(all),
            EarlyStop::Acc => all.then(last),
            // Lower loss is better; a missing or NaN loss never wins on loss.
            EarlyStop::Loss => {
                let l = |b: &Best| b.loss.filter(|x| !x.is_nan()).unwrap_or(f64::INFINITY);
                l(other).total_cmp(&l(self)).then(last)
            }
        };
        order.is_gt()
    }
}

/// The hash recorded in checkpoints: FNV-1a 64 of the resolved configuration as `config.toml`
/// holds it, less the output-only keys ([`Config::to_hashed_toml`]), in hex.
pub fn config_hash(cfg: &Config) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in cfg.to_hashed_toml().bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn metadata(state: &CheckpointState, kind: &str) -> HashMap<String, String> {
    HashMap::from([
        ("format".to_string(), format!("modicl-{kind}")),
        (
            "format_version".to_string(),
            state.format_version.to_string(),
        ),
        ("step".to_string(), state.step.to_string()),
        ("config_hash".to_string(), state.config_hash.clone()),
    ])
}

/// The optimizer's tensors: per parameter, `exp_avg.<name>` and `exp_avg_sq.<name>`.
fn optimizer_tensors(model: &Model, opt: &AdamW) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut out = Vec::new();
    for s in &model.layout.specs {
        let r = s.offset..s.offset + s.len;
        out.push((
            format!("exp_avg.{}", s.name),
            s.shape.clone(),
            opt.m[r.clone()].to_vec(),
        ));
        out.push((
            format!("exp_avg_sq.{}", s.name),
            s.shape.clone(),
            opt.v[r].to_vec(),
        ));
    }
    out
}

/// The checksum recorded for `bytes`: `blake3:<hex>`, as `b3sum` prints the digest.
pub fn checksum(bytes: &[u8]) -> String {
    format!("blake3:{}", blake3::hash(bytes).to_hex())
}

/// What `DONE` holds: the checksum of `state.json`.
fn done_marker(state_json: &[u8]) -> String {
    format!("state.json {}\n", checksum(state_json))
}

/// Writes a checkpoint directory atomically: assembled under a temporary name, `DONE` last,
/// then renamed to `dir` (replacing an older directory of that name). Without `opt`, only the
/// model and the state are written. The state written records the files' checksums (the
/// `files` of `state` itself is ignored).
pub fn write_checkpoint(
    dir: &Path,
    model: &Model,
    opt: Option<&AdamW>,
    state: &CheckpointState,
) -> Result<(), TrainError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("ckpt");
    let tmp = parent.join(format!(".tmp-{name}-{}", std::process::id()));
    let old = parent.join(format!(".old-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    let mut state = state.clone();
    state.files.clear();
    let sd = params::state_dict(&model.cfg, &model.layout, &model.params);
    let bytes = params::to_safetensors(&sd, Some(metadata(&state, "model")))?;
    write_atomic(&tmp.join(MODEL_FILE), &bytes)?;
    state.files.insert(MODEL_FILE.into(), checksum(&bytes));
    if let Some(opt) = opt {
        let mut meta = metadata(&state, "optimizer");
        meta.insert("adam_step".into(), opt.step.to_string());
        let bytes = params::to_safetensors(&optimizer_tensors(model, opt), Some(meta))?;
        write_atomic(&tmp.join(OPTIMIZER_FILE), &bytes)?;
        state.files.insert(OPTIMIZER_FILE.into(), checksum(&bytes));
    }
    let json = serde_json::to_string_pretty(&state).expect("state serialises") + "\n";
    write_atomic(&tmp.join(STATE_FILE), json.as_bytes())?;
    write_atomic(&tmp.join("DONE"), done_marker(json.as_bytes()).as_bytes())?;
    if dir.exists() {
        fs::rename(dir, &old).map_err(|e| TrainError::io(dir, e))?;
    }
    fs::rename(&tmp, dir).map_err(|e| TrainError::io(dir, e))?;
    let _ = fs::remove_dir_all(&old);
    if let Ok(d) = fs::File::open(parent) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The model's file in a checkpoint directory.
pub const MODEL_FILE: &str = "model.safetensors";
/// The optimizer's file in a checkpoint directory.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// The state's file in a checkpoint directory.
pub const STATE_FILE: &str = "state.json";

fn corrupt(path: &Path, reason: impl Into<String>) -> TrainError {
    TrainError::Corrupt {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Reads `state.json` of a checkpoint directory, checking it against the checksum in `DONE`
/// (format version 2 on).
pub fn read_state(dir: &Path) -> Result<CheckpointState, TrainError> {
    let path = dir.join(STATE_FILE);
    let bytes = read_bytes(&path)?;
    let done = read_text(&dir.join("DONE"))?;
    // An empty DONE is a version-1 checkpoint, which recorded no checksums.
    if !done.is_empty() && done != done_marker(&bytes) {
        let found = checksum(&bytes);
        let recorded = done
            .trim_end()
            .strip_prefix("state.json ")
            .unwrap_or(done.trim_end());
        return Err(corrupt(
            &path,
            format!("its checksum is {found}, DONE records {recorded}"),
        ));
    }
    let state: CheckpointState =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(&path, e.to_string()))?;
    if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&state.format_version) {
        return Err(corrupt(
            &path,
            format!(
                "format version {} (this modicl reads {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION})",
                state.format_version
            ),
        ));
    }
    if state.format_version >= 2 && done.is_empty() {
        return Err(corrupt(
            &dir.join("DONE"),
            "it is empty, but a version-2 checkpoint's DONE records the checksum of state.json",
        ));
    }
    Ok(state)
}

/// Reads file `name` of a checkpoint directory and checks it against the checksum that
/// `state` records (version 1 checkpoints record none: their files are read unverified).
pub fn read_checked(
    dir: &Path,
    name: &str,
    state: &CheckpointState,
) -> Result<Vec<u8>, TrainError> {
    let path = dir.join(name);
    let bytes = read_bytes(&path)?;
    if state.format_version >= 2 {
        let Some(recorded) = state.files.get(name) else {
            return Err(corrupt(
                &dir.join(STATE_FILE),
                format!("it records no checksum for {name}"),
            ));
        };
        let found = checksum(&bytes);
        if &found != recorded {
            return Err(corrupt(
                &path,
                format!("its checksum is {found}, state.json records {recorded}"),
            ));
        }
    }
    Ok(bytes)
}

/// Loads the model of a checkpoint directory, verifying its checksum.
pub fn read_model(dir: &Path, cfg: &ModelConfig) -> Result<Model, TrainError> {
    let state = read_state(dir)?;
    let bytes = read_checked(dir, MODEL_FILE, &state)?;
    Model::from_safetensors(cfg.clone(), &bytes)
        .map_err(|e| corrupt(&dir.join(MODEL_FILE), e.to_string()))
}

/// Loads the optimizer state of a checkpoint directory for `model`, verifying its checksum.
pub fn read_optimizer(dir: &Path, model: &Model, cfg: AdamWConfig) -> Result<AdamW, TrainError> {
    let path = dir.join(OPTIMIZER_FILE);
    let bytes = read_checked(dir, OPTIMIZER_FILE, &read_state(dir)?)?;
    let corrupt = |reason: String| TrainError::Corrupt {
        path: path.display().to_string(),
        reason,
    };
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let step = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("adam_step"))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| corrupt("metadata adam_step is missing".into()))?;
    let mut opt = AdamW::new(cfg, model.layout.total);
    opt.step = step;
    for s in &model.layout.specs {
        let r = s.offset..s.offset + s.len;
        let m = params::read_tensor(&st, &format!("exp_avg.{}", s.name), &s.shape)
            .map_err(|e| corrupt(e.to_string()))?;
        let v = params::read_tensor(&st, &format!("exp_avg_sq.{}", s.name), &s.shape)
            .map_err(|e| corrupt(e.to_string()))?;
        opt.m[r.clone()].copy_from_slice(&m);
        opt.v[r].copy_from_slice(&v);
    }
    Ok(opt)
}
