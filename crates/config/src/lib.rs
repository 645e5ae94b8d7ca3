//! modicl's run configuration.
//!
//! This crate is the one place where raw input (a TOML file, `--set section.key=value`
//! overrides) becomes a typed [`Config`]. Every key is declared once, in the table at the top
//! of this file, with its default, its [`Kind`] (type and allowed range) and its help text.
//! Reading and checking a value, the `allowed` text of errors, `modicl config keys`, the
//! resolved `config.toml` ([`Config::to_toml`]) and [`Config::default`] all come from there.
//!
//! Range checks that need only one value happen when a key is set; the checks that involve
//! several keys happen in [`Config::check`]. Checks that need the generated data (a batch
//! that must divide by the number of tasks, say) happen where the data is built.

mod error;
mod kind;
mod preset;
mod run;
mod task;

use std::fmt::Write as _;
use std::path::Path;

pub use error::ConfigError;
pub use kind::Kind;
pub use preset::{Preset, DEFAULT_PRESET, PRESETS};
pub use run::{
    Act, CheckpointSteps, CurriculumSection, EarlyStop, ModelSection, OptimSection, Precision,
    Stage, Stages, TrainSection,
};
pub use task::{is_prime, BatchLayout, EvalConfig, InputSplit, OodCap, TaskConfig, TaskSource};
pub use toml::Value;

use kind::{closed, closed_open, int, open, open_closed, Setting};

/// A whole run's configuration, one field per section.
///
/// [`Config::default`] holds the paper's depth-4 run (the defaults declared with the keys);
/// a run without `--preset` starts from the [`DEFAULT_PRESET`] instead.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub task: TaskConfig,
    pub model: ModelSection,
    pub optim: OptimSection,
    pub train: TrainSection,
    pub eval: EvalConfig,
    pub curriculum: CurriculumSection,
}

/// One configuration key.
pub struct Field {
    /// `section.key`.
    pub key: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// The values it takes.
    pub kind: Kind,
    get: fn(&Config) -> Value,
    set: fn(&mut Config, &Field, &Value) -> Result<(), ConfigError>,
}

impl Field {
    /// The current value of this key in `cfg`.
    pub fn get(&self, cfg: &Config) -> Value {
        (self.get)(cfg)
    }
    /// Sets this key, checking type and range; on error `cfg` is unchanged.
    pub fn set(&self, cfg: &mut Config, v: &Value) -> Result<(), ConfigError> {
        (self.set)(cfg, self, v)
    }
    /// What values are allowed, as shown in errors.
    pub fn allowed(&self) -> String {
        self.kind.allowed()
    }
    /// The error for `v` as a value of this key.
    fn invalid(&self, v: &Value) -> ConfigError {
        ConfigError::invalid(self.key, v, self.allowed())
    }
}

/// Declares the keys: for each section, its `Default` impl (with the doc comments given) and,
/// for each of its fields, `field = default, kind, help;`. Every field of a section must be
/// listed (the struct literal of `Default` fails to compile otherwise). It generates [`FIELDS`],
/// whose getters and setters go through the field type's `Setting` impl.
macro_rules! keys {
    ($(
        $(#[$doc:meta])*
        $section:ident: $Section:ident {
            $($field:ident = $default:expr, $kind:expr, $help:literal;)*
        }
    )*) => {
        $(
            impl Default for $Section {
                $(#[$doc])*
                fn default() -> Self {
                    $Section { $($field: $default,)* }
                }
            }
        )*

        /// Every configuration key, in the order they are printed.
        pub static FIELDS: &[Field] = &[$($(
            Field {
                key: concat!(stringify!($section), ".", stringify!($field)),
                help: $help,
                kind: $kind,
                get: |c| Setting::write(&c.$section.$field),
                set: |c, f, v| {
                    c.$section.$field = Setting::read(f, v)?;
                    Ok(())
                },
            },
        )*)*];
    };
}

keys! {
    /// The task setup of the paper's depth-4 checkpoint: p = 29, 96 parallelogram groups
    /// (384 tasks), alpha = 0.8, 32 examples, batch 1536, seed 1, data_seed 0.
    task: TaskConfig {
        p = 29, int(2, 65536),
            "modulus p of z = W·X mod p (a warning is printed when p is not prime)";
        n_var = 2, int(1, 8),
            "number of input variables (length of the task vector W)";
        n_base = 96, int(0, 1 << 22),
            "parallelogram base tasks; each brings three partners, giving 4·n_base tasks (needs n_var = 2; task.source = 'generate' only)";
        n_random = 0, int(0, 1 << 24),
            "further pre-training tasks drawn uniformly from the rest of Z_p^n_var (task.source = 'generate' only)";
        alpha = 0.8, open(0.0, 1.0),
            "fraction of the p^n_var inputs used for training; round(alpha·p^n_var) train inputs";
        examples = 32, int(1, 4096),
            "examples (x, y, z) per sequence, k";
        ood_cap = OodCap::Count(256), Kind::Custom(OodCap::ALLOWED),
            "keep at most this many o.o.d. tasks, or \"all\"";
        official_compat = false, Kind::Bool,
            "official compatibility: floor the o.o.d. task count to a multiple of 8";
        seed = 1, int(0, i64::MAX),
            "seed of the task draw (and of model initialisation)";
        data_seed = 0, int(0, i64::MAX),
            "seed of the input split, the training batches and the evaluation sets";
        batch = 1536, int(1, 1 << 24),
            "sequences per training batch; a multiple of the number of pre-training tasks";
        source = TaskSource::Generate, Kind::Custom(TaskSource::ALLOWED),
            "pre-training tasks: 'generate' (n_base, n_random, seed), 'file:PATH' or 'official:seed=S,n_base=N'";
        layout = BatchLayout::Shared, Kind::Enum(BatchLayout::NAMES),
            "batch layout: 'shared' (official: all tasks see the same inputs) or 'independent'";
        split = InputSplit::Modicl, Kind::Enum(InputSplit::NAMES),
            "train/test split of the inputs: 'modicl' (its own generator) or 'official' (numpy's np.random.seed(data_seed) + shuffle, bit for bit; data_seed below 2^32; the paper presets)";
    }

    /// The paper's depth-4 model: d 512, 4 heads, 4 blocks, MLP 4·d, ReLU, tied, RoPE 10^4.
    model: ModelSection {
        d_model = 512, int(2, 16384),
            "residual stream width d; a multiple of model.heads with an even head width";
        heads = 4, int(1, 256),
            "attention heads per block; the head width d_model / heads must be even";
        layers = 4, int(1, 64),
            "transformer blocks (depth): 2 is the minimum for o.o.d. generalization";
        mlp_ratio = 4, int(1, 16),
            "MLP hidden width as a multiple of d_model";
        act = Act::Relu, Kind::Enum(Act::NAMES),
            "MLP activation: 'relu' (the paper's) or 'gelu' (tanh approximation)";
        tied = true, Kind::Bool,
            "tie the output head to the token embedding (the paper's models are tied)";
        rope_theta = 10_000.0, closed(1.0, 1e9),
            "RoPE base (rotary_embedding_torch's default 10000)";
        ln_eps = 1e-5, open_closed(0.0, 0.1),
            "LayerNorm epsilon";
    }

    /// The paper's: lr 1.5e-4, weight decay 2.0, betas (0.9, 0.98), eps 1e-8.
    optim: OptimSection {
        lr = 1.5e-4, open_closed(0.0, 10.0),
            "peak learning rate of AdamW (warm-up from 0.01·lr, cosine decay to 0.1·lr)";
        weight_decay = 2.0, closed(0.0, 100.0),
            "decoupled weight decay on every matrix, the embedding included (not LayerNorm)";
        beta1 = 0.9, closed_open(0.0, 1.0),
            "AdamW first-moment decay";
        beta2 = 0.98, closed_open(0.0, 1.0),
            "AdamW second-moment decay";
        eps = 1e-8, open_closed(0.0, 1.0),
            "AdamW epsilon";
    }

    /// The paper's: 200k steps, 10k warm-up, evaluation every 1000 steps, 10 log-spaced
    /// checkpoints, a resume checkpoint every 5000 steps.
    train: TrainSection {
        name = "paper-d4".into(), Kind::Name,
            "run name; the run directory defaults to runs/<name>";
        steps = 200_000, int(1, 1_000_000_000),
            "optimizer steps";
        warmup = 10_000, int(0, 1_000_000_000),
            "linear warm-up steps (0.01·lr to lr; fewer than train.steps), then cosine decay to 0.1·lr at the last step";
        eval_every = 1000, int(1, 1_000_000_000),
            "evaluate the four sets every N steps (and at step 1 and the last step)";
        eval_early = 8, int(0, 64),
            "also evaluate at N log-spaced steps between step 1 and the first eval_every (0 = none; output only: never picks the best_ood checkpoint, not part of the config hash)";
        checkpoints = CheckpointSteps::Log(10), Kind::Custom(CheckpointSteps::ALLOWED),
            "kept checkpoints: 'log:N' (N log-spaced steps from warm-up to the end, official) or a list of steps; the last step is always kept";
        save_every = 5000, int(0, 1_000_000_000),
            "write a resume checkpoint every N steps, replacing the previous one (0 = never)";
        precision = Precision::F32, Kind::Enum(Precision::NAMES),
            "arithmetic of the matrix products: 'f32', 'tf32' (TF32 tensor cores) or 'bf16' (bf16 operands, f32 accumulation, as PyTorch's bf16 autocast); tf32 and bf16 need --device cuda; part of the config hash unless f32";
        early_stop = EarlyStop::AccLast, Kind::Enum(EarlyStop::NAMES),
            "the o.o.d.-test statistic that picks the best_ood checkpoint: 'acc_last' (last-shot accuracy, the official), 'acc' (all-shot accuracy: k times the samples) or 'loss' (mean cross-entropy, lowest wins)";
        tensorboard = false, Kind::Bool,
            "also write the metrics as TensorBoard event files under <run>/tb/ (output only: not part of the config hash)";
    }

    /// 16 sequences per task, the number of last-shot samples per task the official code takes.
    eval: EvalConfig {
        seqs_per_task = 16, int(1, 65536),
            "sequences per task in each of the four evaluation sets";
        target_se = 0.0, closed(0.0, 0.5),
            "size each evaluation set for this last-shot standard error at worst: at least ceil(0.25/target_se^2) sequences per set (0.016: 977), seqs_per_task raised for sets with few tasks (0 = off)";
    }

    /// Training interventions, all off: the task list, the batch and the examples as above.
    curriculum: CurriculumSection {
        tasks = Stages::default(), Kind::Custom(Stages::ALLOWED),
            "task-count curriculum: 'COUNT@STEP,...' trains on the first COUNT pre-training tasks from step index STEP on (the first stage at 0, the last all of them, each COUNT dividing task.batch; '' = off); evaluation always on the full lists";
        examples = Stages::default(), Kind::Custom(Stages::ALLOWED),
            "context-length curriculum: 'K@STEP,...' trains on sequences of K examples from step index STEP on (the first stage at 0, the last task.examples; CPU only; '' = off); evaluation always at task.examples";
        mix_fraction = 0.0, closed_open(0.0, 1.0),
            "few-task mixture: this fraction of each batch's sequences (at the first step) relabelled to the first mix_tasks tasks, annealed linearly to 0 at mix_until (0 = off)";
        mix_tasks = 4, int(1, 1 << 24),
            "few-task mixture: how many of the first pre-training tasks the mixed sequences use";
        mix_until = 0, int(0, 1_000_000_000),
            "few-task mixture: the step index at which the mixed fraction reaches 0 (needed, above 0, when mix_fraction is set)";
    }
}

/// The smallest `eval.target_se` above 0: 0.25/0.002^2 = 62,500 sequences per set.
pub const MIN_TARGET_SE: f64 = 0.002;

/// Keys that only choose extra outputs: left out of [`Config::to_hashed_toml`].
///
/// `train.eval_early` adds evaluations only: they read the weights, never change them, and are
/// never candidates for the `best_ood` checkpoint, so checkpoints are the same bytes whatever
/// its value.
pub const OUTPUT_ONLY: &[&str] = &["train.eval_early", "train.tensorboard"];

/// Keys added after configurations were first hashed, with the value that gives what every
/// configuration computed before they existed: at that value the key stays out of the hashed
/// text (so those configurations keep their hashes), at any other it is hashed like any key.
pub const HASHED_UNLESS: &[(&str, &str)] = &[
    ("train.precision", "\"f32\""),
    ("train.early_stop", "\"acc_last\""),
    ("eval.target_se", "0.0"),
    ("curriculum.tasks", "\"\""),
    ("curriculum.examples", "\"\""),
    ("curriculum.mix_fraction", "0.0"),
    ("curriculum.mix_tasks", "4"),
    ("curriculum.mix_until", "0"),
];

/// The field for `key`, or an error suggesting the closest known key (at most 3 edits away).
pub fn field(key: &str) -> Result<&'static Field, ConfigError> {
    FIELDS
        .iter()
        .find(|f| f.key == key)
        .ok_or_else(|| ConfigError::UnknownKey {
            key: error::one_line(key),
            suggestion: FIELDS
                .iter()
                .map(|f| (strsim::levenshtein(f.key, key), f.key))
                .filter(|(d, _)| *d <= 3)
                .min()
                .map(|(_, k)| k.to_string()),
        })
}

/// A configuration resolved from the user's input, with the warnings to show about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub config: Config,
    /// One line each, without a `warning:` prefix: keys the user set that have no effect,
    /// keys an `official:` task source set for the user, and [`TaskConfig::warnings`].
    pub warnings: Vec<String>,
}

impl Config {
    /// The preset (the default one when `None`), then the TOML file (if any), then each
    /// `section.key=value` override in order; then the checks that involve several keys.
    /// [`Config::resolve_with_warnings`] also says which of the user's keys have no effect.
    pub fn resolve(
        preset: Option<&str>,
        file: Option<&Path>,
        overrides: &[String],
    ) -> Result<Config, ConfigError> {
        Self::resolve_with_warnings(preset, file, overrides).map(|r| r.config)
    }

    /// As [`Config::resolve`], with a warning for each key set by the file or an override
    /// (not by the preset) that the resolved configuration ignores: `task.n_base` and
    /// `task.n_random` under a `file:` or `official:` task source, unless the value is the one
    /// the source implies. A cross-key error names the key the user set (`model.heads` rather
    /// than `model.d_model`, `train.steps` rather than `train.warmup`) when only one of the
    /// pair was set by the user.
    pub fn resolve_with_warnings(
        preset: Option<&str>,
        file: Option<&Path>,
        overrides: &[String],
    ) -> Result<Resolved, ConfigError> {
        let mut cfg = Preset::named(preset.unwrap_or(DEFAULT_PRESET))?.config()?;
        let mut user: Vec<&'static str> = Vec::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            user.extend(cfg.merge(&text, &path.display().to_string())?);
        }
        for o in overrides {
            user.push(cfg.apply(o)?);
        }
        let mut warnings = cfg.fit_official_source(&user);
        cfg.check_naming(&user)?;
        warnings.extend(
            FIELDS
                .iter()
                .filter(|f| user.contains(&f.key))
                .filter_map(|f| cfg.ignored(f)),
        );
        warnings.extend(cfg.task.warnings());
        Ok(Resolved {
            config: cfg,
            warnings,
        })
    }

    /// When the user chose an `official:` task source, the keys it implies that the user did
    /// not set themselves follow it: p = 29 and n_var = 2 (the official lists are over
    /// Z_29^2), and a batch that holds every one of its 4·n_base tasks equally often (the
    /// preset's batch rounded up to a multiple). Returns one note per key changed.
    fn fit_official_source(&mut self, user: &[&str]) -> Vec<String> {
        let TaskSource::Official { n_base, .. } = self.task.source else {
            return Vec::new();
        };
        if !user.contains(&"task.source") {
            return Vec::new();
        }
        let mut notes = Vec::new();
        let src = self.task.source.to_string();
        let mut fit = |key: &str, old: u32, new: u32| {
            if !user.contains(&key) && old != new {
                notes.push(format!(
                    "{key} = {new} (was {old}): task.source = '{src}' implies it; set {key} to override"
                ));
                return new;
            }
            old
        };
        self.task.p = fit("task.p", self.task.p, task::OFFICIAL_P);
        self.task.n_var = fit("task.n_var", self.task.n_var, 2);
        let n_id = 4 * n_base;
        let batch = self.task.batch;
        self.task.batch = fit("task.batch", batch, batch.div_ceil(n_id) * n_id);
        notes
    }

    /// Reads a resolved `config.toml` (as a run directory holds): defaults, then every key of
    /// the file, then the cross-key checks. No preset is involved and nothing warns.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        cfg.merge_toml(text, origin)?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Checks that involve more than one key (each key's own range is checked when set):
    /// `model.d_model` a multiple of 2·`model.heads`, `train.warmup` below `train.steps`.
    /// Errors name `model.d_model` and `train.warmup`.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.check_naming(&[])
    }

    /// [`Config::check`], naming `model.heads` or `train.steps` when that key is in `user`
    /// and the other key of its pair is not.
    fn check_naming(&self, user: &[&str]) -> Result<(), ConfigError> {
        let only = |k: &str, other: &str| user.contains(&k) && !user.contains(&other);
        let m = &self.model;
        if !m.d_model.is_multiple_of(m.heads) || !(m.d_model / m.heads).is_multiple_of(2) {
            if only("model.heads", "model.d_model") {
                let half = m.d_model / 2;
                let fit = kind::either(
                    (1..=half.min(256))
                        .filter(|h| m.d_model.is_multiple_of(2) && half.is_multiple_of(*h))
                        .map(|h| h.to_string())
                        .collect(),
                );
                return Err(ConfigError::invalid(
                    "model.heads",
                    m.heads,
                    format!(
                        "a divisor of model.d_model = {} leaving an even head width (for RoPE): {fit}",
                        m.d_model
                    ),
                ));
            }
            return Err(ConfigError::invalid(
                "model.d_model",
                m.d_model,
                format!(
                    "a multiple of 2·model.heads = {} (the head width must be even for RoPE)",
                    2 * m.heads
                ),
            ));
        }
        if self.task.split == InputSplit::Official && self.task.data_seed > u32::MAX as u64 {
            return Err(ConfigError::invalid(
                "task.data_seed",
                self.task.data_seed,
                "an integer in 0..=4294967295 with task.split = 'official' (numpy's seed range)",
            ));
        }
        let t = &self.train;
        if t.warmup >= t.steps {
            if only("train.steps", "train.warmup") {
                return Err(ConfigError::invalid(
                    "train.steps",
                    t.steps,
                    format!("an integer above train.warmup = {}", t.warmup),
                ));
            }
            return Err(ConfigError::invalid(
                "train.warmup",
                t.warmup,
                format!("an integer below train.steps = {}", t.steps),
            ));
        }
        let c = &self.curriculum;
        for (key, stages) in [
            ("curriculum.tasks", &c.tasks),
            ("curriculum.examples", &c.examples),
        ] {
            if let Some(last) = stages.0.last().filter(|l| l.from >= t.steps) {
                return Err(ConfigError::invalid(
                    key,
                    format!("'{stages}'"),
                    format!(
                        "stages that start before train.steps = {} (the last starts at {})",
                        t.steps, last.from
                    ),
                ));
            }
        }
        let se = self.eval.target_se;
        if se > 0.0 && se < MIN_TARGET_SE {
            return Err(ConfigError::invalid(
                "eval.target_se",
                se,
                format!("0 (off) or a standard error in {MIN_TARGET_SE}..=0.5 (at most 62,500 sequences per set)"),
            ));
        }
        if let Some(last) = c.examples.0.last() {
            if last.count != self.task.examples {
                return Err(ConfigError::invalid(
                    "curriculum.examples",
                    format!("'{}'", c.examples),
                    format!(
                        "stages whose last count is task.examples = {}",
                        self.task.examples
                    ),
                ));
            }
        }
        if c.mix_fraction > 0.0 && c.mix_until == 0 {
            return Err(ConfigError::invalid(
                "curriculum.mix_until",
                c.mix_until,
                format!(
                    "a step index above 0 with curriculum.mix_fraction = {} (the step at which the mixture reaches 0)",
                    c.mix_fraction
                ),
            ));
        }
        Ok(())
    }

    /// The training interventions that are on, in words (empty for a run without any): what
    /// `summary.json` and the reports name.
    pub fn interventions(&self) -> Vec<String> {
        let c = &self.curriculum;
        let mut out = Vec::new();
        if c.tasks.is_on() {
            out.push(format!(
                "task-count curriculum {} (tasks@step index)",
                c.tasks
            ));
        }
        if c.examples.is_on() {
            out.push(format!(
                "context-length curriculum {} (examples@step index)",
                c.examples
            ));
        }
        if c.mix_fraction > 0.0 {
            out.push(format!(
                "few-task mixture: {} of each batch on the first {} tasks, falling to 0 at step index {}",
                c.mix_fraction, c.mix_tasks, c.mix_until
            ));
        }
        out
    }

    /// Why `f` has no effect in this configuration, if it has none: `task.n_base` and
    /// `task.n_random` count only when the tasks are generated. A value that agrees with the
    /// source (the `n_base` of an `official:` list, 0 otherwise) is not reported.
    fn ignored(&self, f: &Field) -> Option<String> {
        let t = &self.task;
        let (implied, value) = match (&t.source, f.key) {
            (TaskSource::Generate, _) => return None,
            (TaskSource::Official { n_base, .. }, "task.n_base") => (*n_base, t.n_base),
            (_, "task.n_base") => (0, t.n_base),
            (_, "task.n_random") => (0, t.n_random),
            _ => return None,
        };
        (value != implied).then(|| {
            format!(
                "{} = {value} is ignored: task.source = '{}' brings its own task list ({} counts only with task.source = 'generate')",
                f.key, t.source, f.key
            )
        })
    }

    /// Applies every key of a TOML document (sections of keys) on top of `self`.
    pub fn merge_toml(&mut self, text: &str, origin: &str) -> Result<(), ConfigError> {
        self.merge(text, origin).map(|_| ())
    }

    /// [`Config::merge_toml`], returning the keys it set.
    fn merge(&mut self, text: &str, origin: &str) -> Result<Vec<&'static str>, ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            let msg = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
            ConfigError::Toml {
                path: origin.to_string(),
                reason: match line {
                    Some(l) => format!("line {l}: {msg}"),
                    None => msg,
                },
            }
        })?;
        let mut set = Vec::new();
        for (section, body) in &table {
            let Value::Table(body) = body else {
                return Err(ConfigError::UnknownKey {
                    key: section.clone(),
                    suggestion: Some(format!("a section such as [task] holding {section}")),
                });
            };
            for (key, v) in body {
                let f = field(&format!("{section}.{key}"))?;
                f.set(self, v)?;
                set.push(f.key);
            }
        }
        Ok(set)
    }

    /// Applies one `section.key=value` override. The value is read as a TOML value when it
    /// parses as one (`31`, `0.5`, `true`, `"all"`), and as a bare string otherwise.
    pub fn apply_override(&mut self, o: &str) -> Result<(), ConfigError> {
        self.apply(o).map(|_| ())
    }

    /// [`Config::apply_override`], returning the key it set.
    fn apply(&mut self, o: &str) -> Result<&'static str, ConfigError> {
        let (key, raw) = o
            .split_once('=')
            .ok_or_else(|| ConfigError::MalformedOverride(error::one_line(o)))?;
        let key = key.trim();
        if !key.contains('.') {
            return Err(ConfigError::MalformedOverride(error::one_line(o)));
        }
        let f = field(key)?;
        f.set(self, &parse_value(raw.trim()))?;
        Ok(f.key)
    }

    /// The configuration as a TOML document holding every key, which [`Config::from_toml`]
    /// and `--config` read back.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        let mut section = "";
        for f in FIELDS {
            let (s, k) = f.key.split_once('.').expect("keys are section.key");
            if s != section {
                if !section.is_empty() {
                    out.push('\n');
                }
                let _ = writeln!(out, "[{s}]");
                section = s;
            }
            let _ = writeln!(out, "{k} = {}", f.get(self));
        }
        out
    }

    /// The text the config hash is taken over: [`Config::to_toml`] without the keys in
    /// [`OUTPUT_ONLY`], which choose extra outputs and never change what is computed, and
    /// without the keys of [`HASHED_UNLESS`] at their old-behaviour value. Adding such a key
    /// therefore leaves the hash of every existing configuration as it was.
    pub fn to_hashed_toml(&self) -> String {
        let mut out = String::new();
        let mut section = "";
        // A section's header (and the blank line before it) waits for its first hashed key,
        // so that a section whose keys are all left out (one added later, at its defaults)
        // leaves no trace either.
        let mut pending = String::new();
        let mut blanks = 0;
        for line in self.to_toml().lines() {
            if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                // A header replaces one still waiting: that section had no hashed key.
                section = s;
                pending = "\n".repeat(blanks) + line + "\n";
                blanks = 0;
                continue;
            }
            if line.is_empty() {
                blanks += 1;
                continue;
            }
            let (key, value) = line.split_once(" = ").unwrap_or((line, ""));
            let full = format!("{section}.{key}");
            let old_default = HASHED_UNLESS.iter().any(|&(k, v)| k == full && v == value);
            if !OUTPUT_ONLY.contains(&full.as_str()) && !old_default {
                out.push_str(&pending);
                pending.clear();
                out.push_str(line);
                out.push('\n');
            }
            blanks = 0;
        }
        out
    }

    /// `(key, value, help)` for every key, for printing a table.
    pub fn rows(&self) -> Vec<(&'static str, String, &'static str)> {
        FIELDS
            .iter()
            .map(|f| (f.key, f.get(self).to_string(), f.help))
            .collect()
    }
}

/// Reads an override's value: a TOML literal if it is one, else the raw text as a string.
pub fn parse_value(raw: &str) -> Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .filter(|t| t.len() == 1)
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_only_keys_stay_out_of_the_hashed_text() {
        let mut c = Config::resolve(None, None, &[]).unwrap();
        let off = c.to_hashed_toml();
        // The hashed text is config.toml without the tensorboard and eval_early lines: the
        // text every configuration was hashed over before those keys existed.
        let full = c.to_toml();
        assert!(full.contains("tensorboard = false"));
        assert!(full.contains("eval_early = 8"));
        let without: String = full
            .lines()
            .filter(|l| {
                !l.starts_with("tensorboard = ")
                    && !l.starts_with("eval_early = ")
                    && !l.starts_with("precision = ")
                    && !l.starts_with("early_stop = ")
                    && !l.starts_with("target_se = ")
            })
            .map(|l| format!("{l}\n"))
            .collect();
        // The curriculum section, all at its defaults, leaves nothing (not even its header).
        let (without, curriculum) = without.split_once("\n[curriculum]\n").unwrap();
        assert_eq!(
            curriculum,
            "tasks = \"\"\nexamples = \"\"\nmix_fraction = 0.0\nmix_tasks = 4\nmix_until = 0\n"
        );
        assert_eq!(off, without);
        c.apply_override("train.tensorboard=true").unwrap();
        c.apply_override("train.eval_early=3").unwrap();
        assert_eq!(c.to_hashed_toml(), off);
        assert_ne!(c.to_toml(), full);
        // precision is hashed unless f32, which every configuration before it computed.
        assert!(full.contains("precision = \"f32\""));
        c.apply_override("train.precision=tf32").unwrap();
        assert!(c.to_hashed_toml().contains("precision = \"tf32\""));
        c.apply_override("train.precision=f32").unwrap();
        assert_eq!(c.to_hashed_toml(), off);
        // So are the early-stopping statistic and the evaluation sizing, off their defaults.
        assert!(full.contains("early_stop = \"acc_last\"") && full.contains("target_se = 0.0"));
        c.apply_override("train.early_stop=loss").unwrap();
        assert!(c.to_hashed_toml().contains("early_stop = \"loss\""));
        c.apply_override("train.early_stop=acc_last").unwrap();
        c.apply_override("eval.target_se=0.016").unwrap();
        assert!(c.to_hashed_toml().contains("target_se = 0.016"));
        c.apply_override("eval.target_se=0").unwrap();
        assert_eq!(c.to_hashed_toml(), off);
        // The curriculum's keys too, with their section header once one of them is on.
        c.apply_override("curriculum.tasks=8@0,16@100").unwrap();
        assert!(c
            .to_hashed_toml()
            .ends_with("\n\n[curriculum]\ntasks = \"8@0,16@100\"\n"));
        c.apply_override("curriculum.tasks=").unwrap();
        assert_eq!(c.to_hashed_toml(), off);
        // Any other key still changes it.
        c.apply_override("train.steps=7").unwrap();
        assert_ne!(c.to_hashed_toml(), off);
    }

    #[test]
    fn evaluation_sets_are_sized_for_the_target_error() {
        let mut c = Config::default();
        assert_eq!(c.eval.per_task(9), 16);
        c.apply_override("eval.target_se=0.016").unwrap();
        // ceil(0.25 / 0.016^2) = 977 sequences: 109 per task for 9 tasks, 16 for 384.
        assert_eq!(c.eval.per_task(9), 109);
        assert_eq!(c.eval.per_task(384), 16);
        assert_eq!(c.eval.per_task(40), 25);
        let err = c
            .apply_override("eval.target_se=0.6")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("eval.target_se") && err.contains("0.6"),
            "{err}"
        );
        // Too small a target would ask for billions of sequences: a one-line error.
        c.apply_override("eval.target_se=1e-300").unwrap();
        let err = c.check().unwrap_err().to_string();
        assert!(
            err.contains("eval.target_se") && err.contains("0.002"),
            "{err}"
        );
        c.apply_override("eval.target_se=0.002").unwrap();
        c.check().unwrap();
    }

    #[test]
    fn defaults_round_trip_through_toml() {
        let mut c = Config::default();
        c.apply_override("task.p=31").unwrap();
        c.apply_override("task.ood_cap=all").unwrap();
        c.apply_override("task.source=official:seed=2,n_base=128")
            .unwrap();
        let mut back = Config::default();
        back.merge_toml(&c.to_toml(), "resolved").unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn overrides_parse_types_and_ranges() {
        let mut c = Config::default();
        c.apply_override("task.alpha=0.6").unwrap();
        assert_eq!(c.task.alpha, 0.6);
        c.apply_override("task.layout=independent").unwrap();
        assert_eq!(c.task.layout, BatchLayout::Independent);
        c.apply_override("task.source=file:/tmp/x y.txt").unwrap();
        assert_eq!(c.task.source, TaskSource::File("/tmp/x y.txt".into()));
        let e = c.apply_override("task.p=1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid task.p = 1: allowed an integer in 2..=65536"
        );
        let e = c.apply_override("task.alpha=1").unwrap_err();
        assert!(e.to_string().contains("task.alpha = 1"), "{e}");
        let e = c.apply_override("task.alpha=0").unwrap_err();
        assert!(e.to_string().contains("open interval"), "{e}");
        let e = c.apply_override("task.pp=3").unwrap_err();
        assert_eq!(e.to_string(), "unknown key task.pp (did you mean task.p?)");
        assert!(matches!(
            c.apply_override("task.p"),
            Err(ConfigError::MalformedOverride(_))
        ));
        assert!(matches!(
            c.apply_override("p=3"),
            Err(ConfigError::MalformedOverride(_))
        ));
        let e = c.apply_override("task.source=official:seed=1").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid task.source = 'official:seed=1'"),
            "{e}"
        );
        let e = c.apply_override("task.official_compat=yes").unwrap_err();
        assert!(e.to_string().contains("true or false"), "{e}");
    }

    #[test]
    fn echoed_values_stay_on_one_line_and_overrides_hold_one_value() {
        let mut c = Config::default();
        for o in [
            "task.p=1\n2",
            "task.layout=a\nb",
            "task.p=31\nx=1",
            "task.q\nx=1",
        ] {
            let e = c.apply_override(o).unwrap_err().to_string();
            assert_eq!(e.lines().count(), 1, "{e}");
            assert!(e.contains("\\n"), "{e}");
        }
        assert_eq!(c.task.p, 29, "a rejected override changes nothing");
        let e = c
            .apply_override("task.source=official:seed=1,n_base=2,seed=2")
            .unwrap_err();
        assert!(e.to_string().contains("each key once"), "{e}");
    }

    #[test]
    fn toml_errors_name_the_key() {
        let mut c = Config::default();
        let e = c
            .merge_toml("[task]\nexamples = 0\n", "f.toml")
            .unwrap_err();
        assert!(e.to_string().contains("task.examples = 0"), "{e}");
        let e = c.merge_toml("[tsk]\np = 3\n", "f.toml").unwrap_err();
        assert!(e.to_string().contains("tsk.p"), "{e}");
        let e = c.merge_toml("[task\n", "f.toml").unwrap_err();
        assert!(e.to_string().starts_with("f.toml: not valid TOML"), "{e}");
        let e = c.merge_toml("p = 3\n", "f.toml").unwrap_err();
        assert!(matches!(e, ConfigError::UnknownKey { .. }), "{e}");
    }

    #[test]
    fn presets_resolve_and_round_trip() {
        for p in PRESETS {
            let c = p.config().unwrap_or_else(|e| panic!("{}: {e}", p.name));
            assert_eq!(c.train.name, p.name);
            let back = Config::from_toml(&c.to_toml(), "resolved").unwrap();
            assert_eq!(back, c, "{}", p.name);
        }
        assert_eq!(PRESETS[0].name, DEFAULT_PRESET);
        let d2 = Preset::named("paper-d2").unwrap().config().unwrap();
        assert_eq!(
            (d2.task.n_base, d2.task.alpha, d2.task.batch, d2.task.seed),
            (128, 0.6, 1024, 2)
        );
        assert_eq!(d2.task.source.to_string(), "official:seed=2,n_base=128");
        let d4 = Preset::named("paper-d4").unwrap().config().unwrap();
        assert_eq!(
            (d4.task.n_base, d4.task.alpha, d4.task.batch, d4.task.seed),
            (96, 0.8, 1536, 1)
        );
        for (name, layers) in [("paper-d2", 2), ("paper-d4", 4), ("paper-d6", 6)] {
            let c = Preset::named(name).unwrap().config().unwrap();
            assert_eq!(
                (c.model.layers, c.model.d_model, c.model.heads),
                (layers, 512, 4)
            );
            assert_eq!((c.optim.lr, c.optim.weight_decay), (1.5e-4, 2.0));
            assert_eq!((c.optim.beta1, c.optim.beta2), (0.9, 0.98));
            assert_eq!((c.train.steps, c.train.warmup), (200_000, 10_000));
            assert_eq!((c.task.examples, c.task.p), (32, 29));
        }
        let e = Preset::named("paper").err().unwrap().to_string();
        assert!(e.contains("--preset") && e.contains("paper-d4"), "{e}");
    }

    #[test]
    fn cross_key_checks_name_the_key() {
        let e = Config::resolve(None, None, &["model.d_model=30".into()]).unwrap_err();
        assert!(
            e.to_string().starts_with("invalid model.d_model = 30"),
            "{e}"
        );
        // 36 / 4 = 9: a multiple of heads, but RoPE needs an even head width.
        let e = Config::resolve(None, None, &["model.d_model=36".into()]).unwrap_err();
        assert!(
            e.to_string().contains("multiple of 2·model.heads = 8"),
            "{e}"
        );
        let e = Config::resolve(None, None, &["train.warmup=999999".into()]).unwrap_err();
        assert!(e.to_string().contains("train.warmup = 999999"), "{e}");
        Config::resolve(
            None,
            None,
            &["model.d_model=40".into(), "model.heads=8".into()],
        )
        .unwrap_err();
        Config::resolve(
            None,
            None,
            &["model.d_model=40".into(), "model.heads=2".into()],
        )
        .unwrap();
    }

    #[test]
    fn every_field_reads_back_what_it_writes() {
        let c = Config::default();
        for f in FIELDS {
            let mut d = Config::default();
            f.set(&mut d, &f.get(&c))
                .unwrap_or_else(|e| panic!("{}: {e}", f.key));
            assert_eq!(d, c, "{}", f.key);
        }
    }

    #[test]
    fn allowed_texts_follow_the_kind() {
        let allowed = |k: &str| field(k).unwrap().allowed();
        assert_eq!(allowed("task.p"), "an integer in 2..=65536");
        assert_eq!(
            allowed("task.alpha"),
            "a number in the open interval (0, 1)"
        );
        assert_eq!(allowed("model.rope_theta"), "a number in [1, 1e9]");
        assert_eq!(allowed("model.ln_eps"), "a number in (0, 0.1]");
        assert_eq!(allowed("optim.beta2"), "a number in [0, 1)");
        assert_eq!(allowed("model.act"), "'relu' or 'gelu'");
        assert_eq!(allowed("task.layout"), "'shared' or 'independent'");
        assert_eq!(allowed("task.official_compat"), "true or false");
        assert_eq!(allowed("task.source"), TaskSource::ALLOWED);
        let e = Config::default()
            .apply_override("model.act=selu")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid model.act = 'selu': allowed 'relu' or 'gelu'"
        );
        let e = Config::default()
            .apply_override("train.name=../x")
            .unwrap_err();
        assert!(
            e.to_string().starts_with("invalid train.name = '../x'"),
            "{e}"
        );
    }

    /// Each numeric key takes the ends of its declared range (unless open) and nothing
    /// beyond them, so the declaration is the range that is checked.
    #[test]
    fn every_numeric_key_takes_exactly_its_declared_range() {
        for f in FIELDS {
            let mut c = Config::default();
            let (inside, outside) = match f.kind {
                Kind::Int { lo, hi } => (
                    vec![Value::Integer(lo), Value::Integer(hi)],
                    vec![Value::Integer(lo - 1), Value::Integer(hi.saturating_add(1))],
                ),
                Kind::Float {
                    lo,
                    hi,
                    lo_open,
                    hi_open,
                } => {
                    let mut inside = vec![Value::Float((lo + hi) / 2.0)];
                    let mut outside = vec![Value::Float(f64::NAN), Value::Float(hi * 2.0 + 1.0)];
                    for (end, is_open) in [(lo, lo_open), (hi, hi_open)] {
                        if is_open { &mut outside } else { &mut inside }.push(Value::Float(end));
                    }
                    outside.push(Value::Float(lo - 1.0));
                    (inside, outside)
                }
                _ => continue,
            };
            for v in &inside {
                f.set(&mut c, v)
                    .unwrap_or_else(|e| panic!("{} = {v}: {e}", f.key));
                assert_eq!(&f.get(&c), v, "{}", f.key);
            }
            for v in &outside {
                if matches!(v, Value::Integer(n) if *n == i64::MAX) {
                    continue; // saturated: i64::MAX is inside
                }
                let e = f.set(&mut c, v).unwrap_err();
                assert_eq!(
                    e.to_string(),
                    format!("invalid {} = {v}: allowed {}", f.key, f.allowed())
                );
            }
        }
    }

    #[test]
    fn keys_the_task_source_ignores_warn_when_the_user_set_them() {
        let resolve = |preset: Option<&str>, sets: &[&str]| {
            let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            Config::resolve_with_warnings(preset, None, &sets).unwrap()
        };
        // The default preset generates its tasks: nothing is ignored.
        assert!(resolve(None, &["task.n_base=8", "task.n_random=3"])
            .warnings
            .is_empty());
        // Presets that set n_base next to an official source warn about nothing.
        for p in PRESETS {
            assert!(resolve(Some(p.name), &[]).warnings.is_empty(), "{}", p.name);
            // Their n_base agrees with their source, so setting it again would not warn.
            let c = p.config().unwrap();
            for f in FIELDS {
                assert_eq!(c.ignored(f), None, "{} {}", p.name, f.key);
            }
        }
        let r = resolve(Some("paper-d4"), &["task.n_base=128"]);
        assert_eq!(
            r.warnings,
            ["task.n_base = 128 is ignored: task.source = 'official:seed=1,n_base=96' brings its own task list (task.n_base counts only with task.source = 'generate')"]
        );
        assert_eq!(r.config.task.n_base, 128, "a warning, not an error");
        // The preset's n_base is not the user's: only n_random warns.
        let r = resolve(
            None,
            &["task.source=official:seed=2,n_base=128", "task.n_random=5"],
        );
        let ignored = |w: &[String]| -> Vec<String> {
            w.iter()
                .filter(|w| w.contains("is ignored"))
                .cloned()
                .collect()
        };
        assert_eq!(ignored(&r.warnings).len(), 1, "{:?}", r.warnings);
        assert!(
            ignored(&r.warnings)[0].starts_with("task.n_random = 5 is ignored"),
            "{:?}",
            r.warnings
        );
        // The source set p and the batch, which the user did not, and said so.
        assert_eq!((r.config.task.p, r.config.task.batch), (29, 512));
        assert!(
            r.warnings[0].starts_with("task.p = 29 (was 11)"),
            "{:?}",
            r.warnings
        );
        // A value that agrees with the source (as a resolved config.toml holds) is fine.
        let r = resolve(
            Some("paper-d2"),
            &["task.n_base=128", "task.n_random=0", "task.seed=5"],
        );
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        let r = resolve(None, &["task.n_base=4", "task.source=file:tasks.txt"]);
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(
            r.warnings[0].contains("'file:tasks.txt'"),
            "{:?}",
            r.warnings
        );
        // Keys from --config count as the user's; each key warns once.
        let path = std::env::temp_dir().join(format!("modicl-config-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "[task]\nn_base = 7\nsource = \"official:seed=1,n_base=96\"\n",
        )
        .unwrap();
        let r = Config::resolve_with_warnings(None, Some(&path), &["task.n_base=9".into()]);
        std::fs::remove_file(&path).unwrap();
        let r = r.unwrap();
        assert_eq!(ignored(&r.warnings).len(), 1, "{:?}", r.warnings);
        assert!(
            ignored(&r.warnings)[0].starts_with("task.n_base = 9 is ignored"),
            "{:?}",
            r.warnings
        );
        // Reading a run's config.toml back neither warns nor fails.
        let c = Config::from_toml(&r.config.to_toml(), "config.toml").unwrap();
        assert_eq!(c, r.config);
    }

    #[test]
    fn cross_key_errors_name_the_key_the_user_set() {
        let resolve = |preset: Option<&str>, sets: &[&str]| {
            let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            Config::resolve(preset, None, &sets)
                .unwrap_err()
                .to_string()
        };
        // The cpu preset has d_model 64.
        assert_eq!(
            resolve(None, &["model.heads=6"]),
            "invalid model.heads = 6: allowed a divisor of model.d_model = 64 leaving an even head width (for RoPE): 1, 2, 4, 8, 16 or 32"
        );
        assert_eq!(
            resolve(None, &["model.heads=64"]),
            "invalid model.heads = 64: allowed a divisor of model.d_model = 64 leaving an even head width (for RoPE): 1, 2, 4, 8, 16 or 32"
        );
        // Both set, or d_model alone: d_model, as before.
        let e = resolve(None, &["model.heads=6", "model.d_model=66"]);
        assert!(
            e.starts_with("invalid model.d_model = 66: allowed a multiple of 2·model.heads = 12"),
            "{e}"
        );
        let e = resolve(None, &["model.d_model=66"]);
        assert!(e.starts_with("invalid model.d_model = 66"), "{e}");
        // The cpu preset has 250 warm-up steps.
        assert_eq!(
            resolve(None, &["train.steps=200"]),
            "invalid train.steps = 200: allowed an integer above train.warmup = 250"
        );
        assert_eq!(
            resolve(None, &["train.steps=200", "train.warmup=300"]),
            "invalid train.warmup = 300: allowed an integer below train.steps = 200"
        );
        // Neither key set by the user (here: checked directly): today's names.
        let mut c = Config::default();
        c.model.heads = 3;
        c.train.steps = 1;
        let e = c.check().unwrap_err().to_string();
        assert!(e.starts_with("invalid model.d_model = 512"), "{e}");
        c.model.heads = 4;
        let e = c.check().unwrap_err().to_string();
        assert!(e.starts_with("invalid train.warmup = 10000"), "{e}");
    }

    #[test]
    fn unknown_keys_suggest_the_closest_key() {
        let e = field("modl.heads").err().unwrap();
        assert_eq!(
            e.to_string(),
            "unknown key modl.heads (did you mean model.heads?)"
        );
        let e = field("train.warmpu").err().unwrap();
        assert!(e.to_string().contains("did you mean train.warmup?"), "{e}");
        let e = field("nothing.like.a.key").err().unwrap();
        assert_eq!(e.to_string(), "unknown key nothing.like.a.key");
    }

    #[test]
    fn defaults_are_the_paper_depth_4_run() {
        let c = Config::default();
        assert_eq!((c.task.p, c.task.n_base, c.task.batch), (29, 96, 1536));
        assert_eq!((c.model.d_model, c.model.layers), (512, 4));
        assert_eq!(c.train.name, "paper-d4");
        assert_eq!(c.train.checkpoints, CheckpointSteps::Log(10));
        c.check().unwrap();
    }
}
