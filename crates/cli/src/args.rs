//! Command-line arguments. Raw flags become a validated [`Config`] in [`ConfigArgs::resolve`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use modicl_config::{Config, ConfigError};
use modicl_trainer::{Checkpoint, Metric};

#[derive(Parser)]
#[command(
    name = "modicl",
    version,
    about = "In-context learning of modular arithmetic: data, training, sweeps and probes",
    long_about = "modicl reproduces and extends \"Learning to grok: Emergence of in-context learning and \
skill composition in modular arithmetic tasks\" (He, Doshi, Das, Gromov, NeurIPS 2024).\n\n\
Configuration: defaults, then --config FILE (TOML), then each --set section.key=value in order. \
`modicl config keys` lists every key."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Figure format besides PNG and SVG, for every figure this command draws: 'pdf' (vector,
    /// for LaTeX; text in the embedded DejaVu Sans). 'png' and 'svg' are always written.
    #[arg(long, global = true, value_name = "FORMAT", value_parser = ["png", "svg", "pdf"])]
    pub format: Option<String>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Inspect and export the tasks, input split, batches and evaluation sets.
    Data(DataArgs),
    /// Print the resolved configuration or the list of keys.
    Config(ConfigCmdArgs),
    /// Train a model: a run directory with metrics, checkpoints and plots.
    Train(TrainArgs),
    /// Per-shot accuracy of a trained model on the four evaluation sets (CSV, JSON, plot).
    Eval(EvalArgs),
    /// Plot a run (training curves, per-shot accuracy) or a sweep (phase diagram).
    Plot(PlotArgs),
    /// Grids of runs: plan, run locally or as a SLURM job array, follow, collect.
    Sweep(SweepArgs),
    /// Time full training steps (forward, backward, AdamW) at a reference model size.
    Bench(BenchArgs),
    /// Check every checkpoint and file of a run or a sweep: checksums, completeness, what a
    /// resume would start from. Changes nothing; exit status 1 when something is corrupt.
    Verify(VerifyArgs),
    /// Behavioural probes of a trained model: which algorithm does it run? Per-shot accuracy
    /// against the Ratio Matching and Modular Regression oracles, k-shot prediction grids,
    /// label corruption. Output: <run>/probes/<checkpoint>/ (docs/probes.md).
    Probe(ProbeArgs),
    /// One self-contained HTML page of a run (metrics, curves, checkpoints, probe figures) or
    /// of a sweep (phase diagrams, a sortable results table, a report per run):
    /// <dir>/report.html.
    Report(ReportArgs),
}

#[derive(Args)]
pub struct ReportArgs {
    /// A run directory (config.toml) or a sweep directory (sweep.json).
    #[arg(value_name = "RUN|SWEEP_DIR")]
    pub path: PathBuf,
    #[command(flatten)]
    pub label: LabelArgs,
}

#[derive(Args)]
pub struct ProbeArgs {
    #[command(subcommand)]
    pub command: ProbeCommand,
}

#[derive(Subcommand)]
pub enum ProbeCommand {
    /// The model's per-shot accuracy on the four sets with the Ratio Matching and Modular
    /// Regression oracle curves (the paper's Fig. 1c): shots.csv, shots.{png,svg}.
    Shots(ProbeShotsArgs),
    /// k-shot prediction grids (the paper's Fig. 5): one task, a fixed prefix of k examples, the
    /// model's prediction for every query, beside the queries each algorithm explains:
    /// kshot/task_A_B/ (.npy arrays, kshot.json, figure).
    Kshot(ProbeKshotArgs),
    /// Label corruption: accuracy and loss by shot and number of wrong labels, and which
    /// earlier examples a prediction depends on: noise/ (noise.json, figures).
    Noise(ProbeNoiseArgs),
    /// Attention patterns of every layer and head on the probe batch (one sequence, and the
    /// mean over the p^2 sequences): attention/task_A_B_slot_E/.
    Attention(ProbeAttentionArgs),
    /// PCA of one head's writes into the residual stream at two tokens of the varying slot,
    /// over all p^2 inputs (the paper's "circle of circles", Fig. 1d), labelled (x, y) and by
    /// discrete logs; --all-heads ranks every head by a circle score: pca/.
    Pca(ProbePcaArgs),
    /// PCA of the number-token embeddings (Fig. 1e) and their Fourier spectra over Z_p and
    /// over the multiplicative group: embedding/.
    Embed(ProbeEmbedArgs),
    /// Cosine similarities of each head's writes and of each block's output at the varying
    /// slot's x, y and z tokens, over all inputs (Fig. 8): cosine/task_A_B_slot_E/.
    Cosine(ProbeCosineArgs),
    /// Every probe above into <run>/probes/<checkpoint>/, with index.json listing what was
    /// written.
    All(ProbeAllArgs),
}

/// The probe batch of the representation probes: one task, one slot running over all inputs.
#[derive(Args, Clone)]
pub struct BatchOpts {
    /// The varying example slot e (default: 5, or the run's examples − 2 if fewer); the other
    /// slots hold one fixed example each.
    #[arg(long, value_name = "E")]
    pub slot: Option<usize>,
    /// Seed of the fixed examples of the other slots.
    #[arg(long = "batch-seed", value_name = "S", default_value_t = 0)]
    pub batch_seed: u64,
    /// Examples per probe sequence, k (default: the run's task.examples, at most that).
    #[arg(long = "batch-examples", value_name = "K")]
    pub batch_examples: Option<usize>,
}

/// A run, a task and the probe batch: what the representation probes read.
#[derive(Args, Clone)]
pub struct ReprTarget {
    #[command(flatten)]
    pub target: ProbeTarget,
    /// The task, as its two numbers in 0..p, e.g. 6,6.
    #[arg(long, value_name = "A,B")]
    pub task: String,
    #[command(flatten)]
    pub batch: BatchOpts,
}

#[derive(Args)]
pub struct ProbeAttentionArgs {
    #[command(flatten)]
    pub on: ReprTarget,
    /// Tokens shown in the figures (the first N; the arrays hold all).
    #[arg(long, value_name = "N", default_value_t = 48)]
    pub tokens: usize,
}

#[derive(Args)]
pub struct ProbePcaArgs {
    #[command(flatten)]
    pub on: ReprTarget,
    #[command(flatten)]
    pub pca: PcaOpts,
}

#[derive(Args, Clone)]
pub struct PcaOpts {
    /// Layer of the head (default: the head with the highest circle score).
    #[arg(long, value_name = "L", requires = "head")]
    pub layer: Option<usize>,
    /// Head within the layer.
    #[arg(long, value_name = "H", requires = "layer")]
    pub head: Option<usize>,
    /// The two slot tokens whose head writes are concatenated.
    #[arg(long = "tokens", value_enum, default_value_t = PairArg::Xy)]
    pub pair: PairArg,
    /// Also draw every layer and head in one grid, ranked by the circle score.
    #[arg(long)]
    pub all_heads: bool,
}

/// `--pair`.
#[derive(Clone, Copy, ValueEnum)]
pub enum PairArg {
    Xy,
    Xz,
    Yz,
}

#[derive(Args)]
pub struct ProbeEmbedArgs {
    #[command(flatten)]
    pub target: ProbeTarget,
}

#[derive(Args)]
pub struct ProbeCosineArgs {
    #[command(flatten)]
    pub on: ReprTarget,
    #[command(flatten)]
    pub cosine: CosineOpts,
}

#[derive(Args, Clone)]
pub struct CosineOpts {
    /// Per head (its write into the residual stream), per block (the residual stream after
    /// it), or both.
    #[arg(long, value_enum, default_value_t = PerArg::Both)]
    pub per: PerArg,
}

/// `--per`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PerArg {
    Head,
    Block,
    Both,
}

/// The run and checkpoint a probe reads, and where it writes.
#[derive(Args, Clone)]
pub struct ProbeTarget {
    /// A run directory, or one of its checkpoint directories (checkpoints/step_N, best_ood).
    pub path: PathBuf,
    /// Which checkpoint of a run directory: 'last' (the newest complete one), 'best_ood', or
    /// a step number.
    #[arg(long, default_value_t = Checkpoint::Last.to_string(), value_name = "WHICH")]
    pub checkpoint: String,
    /// Output folder (default: <run>/probes/<checkpoint>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long, value_name = "T", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Print the results as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ProbeShotsArgs {
    #[command(flatten)]
    pub target: ProbeTarget,
    #[command(flatten)]
    pub opts: ShotsOpts,
}

#[derive(Args, Clone)]
pub struct ShotsOpts {
    /// Sequences per task in each set (default: the run's eval.seqs_per_task).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub seqs_per_task: Option<u32>,
}

#[derive(Args)]
pub struct ProbeKshotArgs {
    #[command(flatten)]
    pub target: ProbeTarget,
    /// The task, as its n_var numbers in 0..p, e.g. 6,6.
    #[arg(long, value_name = "A,B")]
    pub task: String,
    #[command(flatten)]
    pub opts: KshotOpts,
}

#[derive(Args, Clone)]
pub struct KshotOpts {
    /// Shot counts to draw, comma-separated, each at most the run's examples − 1 (default:
    /// 1, 2, 13 and 31 scaled to the run's examples per sequence).
    #[arg(long, value_name = "K,K,...")]
    pub shots: Option<String>,
    /// Seed of the prefix examples, drawn without replacement from all p^n_var inputs.
    #[arg(
        long,
        value_name = "S",
        default_value_t = 1,
        conflicts_with = "examples"
    )]
    pub examples_seed: u64,
    /// The prefix examples' inputs instead, e.g. '4,21;2,6;19,4' (labels follow from the
    /// task).
    #[arg(long, value_name = "X,Y;X,Y;...")]
    pub examples: Option<String>,
}

#[derive(Args)]
pub struct ProbeNoiseArgs {
    #[command(flatten)]
    pub target: ProbeTarget,
    #[command(flatten)]
    pub opts: NoiseOpts,
}

#[derive(Args, Clone)]
pub struct NoiseOpts {
    /// Tasks per set (i.d. and o.o.d.) in the random-location experiment.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub tasks: u32,
    /// Contexts per task and context length in the random-location experiment.
    #[arg(long, value_name = "T", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub trials: u32,
    /// Sequences per set in the single-location experiment.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub sequences: u32,
    /// Seed of the contexts and the corruptions.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
}

#[derive(Args)]
pub struct ProbeAllArgs {
    #[command(flatten)]
    pub target: ProbeTarget,
    /// Tasks of the k-shot grids (repeatable; default: the first i.d. and the first o.o.d.
    /// task of the run); the first is also the task of the representation probes.
    #[arg(long, value_name = "A,B")]
    pub task: Vec<String>,
    #[command(flatten)]
    pub shots: ShotsOpts,
    #[command(flatten)]
    pub kshot: KshotOpts,
    #[command(flatten)]
    pub noise: NoiseOpts,
    #[command(flatten)]
    pub batch: BatchOpts,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// A run directory (config.toml) or a sweep directory (sweep.json).
    #[arg(value_name = "RUN|SWEEP_DIR")]
    pub path: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub cfg: ConfigArgs,
    /// Run directory (default: runs/<train.name>).
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    pub run_dir: Option<PathBuf>,
    /// Continue the run in DIR from its newest complete checkpoint (its config.toml is used).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["preset", "config", "set", "tasks", "overwrite"])]
    pub resume: Option<PathBuf>,
    /// Replace an existing run in the run directory.
    #[arg(long)]
    pub overwrite: bool,
    /// Also write the metrics as TensorBoard event files under <run>/tb/ (the same as
    /// --set train.tensorboard=true; allowed with --resume).
    #[arg(long)]
    pub tensorboard: bool,
    /// Plain log lines instead of a progress bar (also the default when stderr is not a
    /// terminal).
    #[arg(long)]
    pub quiet: bool,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long, value_name = "T", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    #[command(flatten)]
    pub device: DeviceArg,
    /// With --device cuda: how attention is computed, 'warp' (the default) or 'gemm' (cuBLAS
    /// batched products per head and a softmax kernel); `modicl bench --attention` says which
    /// is faster on a GPU. Not part of the configuration: the two agree to f32 rounding.
    #[arg(long, value_parser = ["warp", "gemm"])]
    pub attention: Option<String>,
}

/// Where the model runs.
#[derive(Args, Clone, Copy)]
pub struct DeviceArg {
    /// 'cpu', or 'cuda' (GPU 0 through the CUDA backend, docs/engine.md). Without a driver,
    /// NVRTC, cuBLAS or a GPU, a one-line error says which is missing.
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Device {
    Cpu,
    Cuda,
}

/// An `--attention` value (`train`, `bench`) as the CUDA backend's choice: `warp` when absent,
/// and an error when given without `--device cuda`.
pub fn attention(
    value: Option<&str>,
    on_gpu: bool,
) -> Result<modicl_cuda::Attention, modicl_config::ConfigError> {
    match value {
        Some(how) if !on_gpu => Err(modicl_config::ConfigError::invalid(
            "--attention",
            how,
            "only with --device cuda",
        )),
        Some("gemm") => Ok(modicl_cuda::Attention::Gemm),
        _ => Ok(modicl_cuda::Attention::Warp),
    }
}

impl DeviceArg {
    /// Nothing to check for the CPU (None). For CUDA: the GPU, or the error naming what this
    /// machine lacks (driver, NVRTC, cuBLAS, a GPU).
    pub fn check(self) -> anyhow::Result<Option<modicl_cuda::DeviceInfo>> {
        Ok(match self.device {
            Device::Cuda => Some(modicl_cuda::open_device()?),
            Device::Cpu => None,
        })
    }

    /// The trainer's device.
    pub fn trainer(self) -> modicl_trainer::Device {
        match self.device {
            Device::Cpu => modicl_trainer::Device::Cpu,
            Device::Cuda => modicl_trainer::Device::Cuda,
        }
    }
}

#[derive(Args)]
pub struct EvalArgs {
    /// A run directory, or one of its checkpoint directories (checkpoints/step_N, best_ood).
    pub path: PathBuf,
    /// Which checkpoint of a run directory: 'last' (the newest complete one), 'best_ood', or
    /// a step number.
    #[arg(long, default_value_t = Checkpoint::Last.to_string(), value_name = "WHICH")]
    pub checkpoint: String,
    /// Sequences per task in each set (default: the run's eval.seqs_per_task).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub seqs_per_task: Option<u32>,
    /// Folder for shots.csv, eval.json and the plot (default: <run>/eval/<checkpoint>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "T", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    #[command(flatten)]
    pub device: DeviceArg,
}

#[derive(Args)]
pub struct PlotArgs {
    #[command(subcommand)]
    pub command: PlotCommand,
}

#[derive(Subcommand)]
pub enum PlotCommand {
    /// Loss and the four accuracies (all-shot and last-shot) against step, log-x, with the
    /// early-stopping step marked: <run>/plots/curves.{png,svg}.
    Curves(PlotRunArgs),
    /// Accuracy against shot on the four sets, at the last evaluation and the early-stopping
    /// step: <run>/plots/shots.{png,svg}.
    Shots(PlotRunArgs),
    /// The phase diagram of a sweep (x: n_id, log2; y: alpha; colour: phase; text: o.o.d.-test
    /// accuracy), final and early-stopped, plus one heatmap per accuracy: <sweep>/plots/.
    Phase(PhaseArgs),
}

#[derive(Args)]
pub struct PhaseArgs {
    /// A sweep directory.
    pub sweep: PathBuf,
    #[command(flatten)]
    pub label: LabelArgs,
    /// Which labelling the phase maps show: 'paper' (every set passes at --pass) or 'rm' (the
    /// same, plus ood-gen-rm where the o.o.d.-test last-shot accuracy reaches 0.8 of Ratio
    /// Matching's, above chance noise; written as phase_rm*.{png,svg}).
    #[arg(long, value_enum, default_value_t = Labels::Paper)]
    pub labels: Labels,
}

/// The labelling a phase diagram shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Labels {
    Paper,
    Rm,
}

impl From<Labels> for modicl_sweeps::phase::Labelling {
    fn from(l: Labels) -> Self {
        match l {
            Labels::Paper => modicl_sweeps::phase::Labelling::Paper,
            Labels::Rm => modicl_sweeps::phase::Labelling::Rm,
        }
    }
}

/// How runs are labelled with phases.
#[derive(Args, Clone)]
pub struct LabelArgs {
    /// A set "passes" at this accuracy or above (see docs/sweeps.md for the rules).
    #[arg(long, default_value_t = 0.8, value_name = "ACC")]
    pub pass: f64,
    /// Which accuracy the labels use: 'last' (the last shot, the paper's headline) or 'all'.
    #[arg(long, value_enum, default_value_t = Shots::Last)]
    pub metric: Shots,
}

/// The shots whose accuracy phase labels use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shots {
    Last,
    All,
}

impl Shots {
    /// `last` or `all`, as given on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Shots::Last => "last",
            Shots::All => "all",
        }
    }
    /// The metric: last-shot or all-shot accuracy.
    pub fn metric(self) -> Metric {
        match self {
            Shots::Last => Metric::AccLast,
            Shots::All => Metric::Acc,
        }
    }
}

#[derive(Args)]
pub struct SweepArgs {
    #[command(subcommand)]
    pub command: SweepCommand,
}

#[derive(Subcommand)]
pub enum SweepCommand {
    /// Write a sweep directory: a manifest with one resolved config per run (nothing runs).
    Plan(PlanArgs),
    /// Run the sweep's runs on this machine, N at a time (done runs skipped, interrupted
    /// ones resumed).
    Run(SweepRunArgs),
    /// Run exactly run INDEX of the sweep (what a SLURM array element does).
    RunOne(RunOneArgs),
    /// Write a SLURM job-array script for the runs not done, and with --submit, sbatch it.
    Slurm(SlurmArgs),
    /// Per-run state (pending, running, interrupted, done, failed) from the run directories.
    Status(StatusArgs),
    /// One table (CSV and JSON) of every run's final and early-stopped accuracies and phase.
    Collect(CollectArgs),
    /// List the named sweeps.
    Presets,
}

#[derive(Args)]
#[command(mut_arg("preset", |a| a.help(plan_preset_help())))]
pub struct PlanArgs {
    /// The sweep directory to create.
    pub dir: PathBuf,
    /// Base configuration: --preset, --config, --set as for `train`. --preset also takes a
    /// named sweep (phase-paper, phase-cpu), which brings its own axes.
    #[command(flatten)]
    pub cfg: ConfigArgs,
    /// An axis: key=v1,v2,... | key=a:b:step | key=a,b,...,c | key=log2:a:b (repeatable;
    /// the first varies slowest).
    #[arg(long = "grid", value_name = "KEY=VALUES")]
    pub grid: Vec<String>,
}

/// `sweep plan --preset`: the named sweeps and the run presets.
fn plan_preset_help() -> String {
    let sweeps: Vec<&str> = modicl_sweeps::preset::SWEEP_PRESETS
        .iter()
        .map(|p| p.name)
        .collect();
    let runs: Vec<&str> = modicl_config::PRESETS.iter().map(|p| p.name).collect();
    format!(
        "A named sweep, which brings its base and its axes ({}; `modicl sweep presets` describes          them), or a run preset as the base of your own --grid axes ({}; cpu is the default)",
        sweeps.join(", "),
        runs.join(", ")
    )
}

#[derive(Args)]
pub struct SweepRunArgs {
    /// The sweep directory (made by `sweep plan`); runs already done are skipped, interrupted
    /// ones resume.
    pub dir: PathBuf,
    /// Runs at once.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: u32,
    /// Threads in all, split evenly between the runs (default: all cores).
    #[arg(long, value_name = "T", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub threads: Option<u32>,
    /// Plain log lines instead of progress bars.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub device: DeviceArg,
}

#[derive(Args)]
pub struct RunOneArgs {
    /// The sweep directory (made by `sweep plan`).
    pub dir: PathBuf,
    /// The run's index in the manifest (0-based).
    #[arg(long, value_name = "I")]
    pub index: usize,
    /// Threads (default: all cores).
    #[arg(long, value_name = "T", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub threads: Option<u32>,
    #[command(flatten)]
    pub device: DeviceArg,
}

#[derive(Args)]
pub struct SlurmArgs {
    /// The sweep directory (made by `sweep plan`); the script goes to <dir>/slurm/.
    pub dir: PathBuf,
    /// Submit the script with sbatch and record the job id in <dir>/slurm/submissions.json.
    #[arg(long)]
    pub submit: bool,
    /// SLURM partition (#SBATCH --partition); the cluster's default when not given.
    #[arg(long, value_name = "P")]
    pub partition: Option<String>,
    /// Time limit per run, e.g. 6:00:00.
    #[arg(long, value_name = "T")]
    pub time: Option<String>,
    /// GPUs per run, e.g. 1 or a100:1; each run then trains with --device cuda.
    #[arg(long, value_name = "G")]
    pub gpus: Option<String>,
    /// CPUs per run (also its thread count).
    #[arg(long, default_value_t = 8, value_name = "C", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub cpus: u32,
    /// Memory per run, e.g. 64G.
    #[arg(long, value_name = "M")]
    pub mem: Option<String>,
    /// At most K array elements at once.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel: Option<u32>,
    /// A further #SBATCH option, verbatim, e.g. --sbatch-option=--account=abc (repeatable).
    #[arg(long = "sbatch-option", value_name = "OPT", allow_hyphen_values = true)]
    pub sbatch_option: Vec<String>,
}

#[derive(Args)]
pub struct StatusArgs {
    /// The sweep directory.
    pub dir: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct CollectArgs {
    /// The sweep directory; results.csv and results.json are written into it.
    pub dir: PathBuf,
    #[command(flatten)]
    pub label: LabelArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct PlotRunArgs {
    /// A run directory.
    pub run: PathBuf,
    /// Output path without extension (default: <run>/plots/<kind>).
    #[arg(long, value_name = "STEM")]
    pub out: Option<PathBuf>,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Reference config: 'small' (d 256, 4 heads, 2 blocks, batch 64; the default) or 'paper'
    /// (d 512, 4 heads, 4 blocks, batch 128); both 32 examples per sequence, vocabulary 47.
    /// Not with --preset, --config, --set or --tasks, which time a configuration instead.
    #[arg(long, value_parser = ["small", "paper"], conflicts_with_all = ["preset", "config", "set", "tasks"])]
    pub model: Option<String>,
    /// Timed steps (median reported); default 10 for small, 3 for paper.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100000))]
    pub steps: Option<u32>,
    /// Untimed warm-up steps before timing.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub warmup: u32,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "T", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Split each batch into N shards of sequences, one thread each, instead of the engine's
    /// own choice (docs/engine.md, "Small models"); 1 times the unsplit batch, whose products
    /// spread over the threads. CPU only. The engine's choice is what training uses.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub shards: Option<u32>,
    /// Print one JSON object (ms_per_step, tokens_per_s, gflops, peak_rss_mb, ...).
    #[arg(long)]
    pub json: bool,
    /// With --device cuda: after the timed steps, time every kernel and matrix product of 5
    /// more steps on the device (CUDA events) and print where a step's time goes.
    #[arg(long)]
    pub profile: bool,
    /// With --device cuda: how attention is computed: 'warp' (one warp per query, what
    /// training uses) or 'gemm' (cuBLAS batched products per head and a softmax kernel), to
    /// measure which is faster on this GPU.
    #[arg(long, value_parser = ["warp", "gemm"])]
    pub attention: Option<String>,
    #[command(flatten)]
    pub device: DeviceArg,
    /// With --preset, --config, --set or --tasks: time that configuration's exact training
    /// step (its model, batch and data) instead of a reference size; 20 timed steps by default.
    #[command(flatten)]
    pub cfg: ConfigArgs,
}

#[derive(Args)]
pub struct DataArgs {
    #[command(subcommand)]
    pub command: DataCommand,
}

#[derive(Subcommand)]
pub enum DataCommand {
    /// Print the resolved task sets, counts, split sizes and a few rendered sequences.
    Show(ShowArgs),
    /// Write tasks, inputs and training batches as .npy files (readable by numpy).
    Export(ExportArgs),
}

#[derive(Args)]
pub struct ConfigCmdArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print the resolved configuration as TOML (loadable with --config).
    Show(ConfigArgs),
    /// List every configuration key with its value without --preset (the cpu preset's),
    /// allowed values and meaning.
    Keys,
    /// List the presets.
    Presets,
}

/// Options shared by every command that reads a configuration.
#[derive(Args, Clone, Default)]
pub struct ConfigArgs {
    /// Named configuration to start from (see `modicl config presets`): cpu (the default),
    /// paper-d2, paper-d4, paper-d6.
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// TOML file with sections such as [task]; applied on top of the defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override one key, e.g. --set task.p=31 (repeatable; applied in order, after --config).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Pre-training task source, shorthand for --set task.source=SRC: 'generate',
    /// 'file:PATH' (JSON or text, one task per line) or 'official:seed=S,n_base=N'
    /// (the official code's exact lists; seeds 1, 2; n_base 2, 4, 8, 16, 32, 64, 96, 128).
    #[arg(long, value_name = "SRC")]
    pub tasks: Option<String>,
}

impl ConfigArgs {
    /// The validated configuration these flags describe. Prints a warning on stderr for each
    /// key the user set that has no effect.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let mut sets = self.set.clone();
        if let Some(t) = &self.tasks {
            sets.push(format!("task.source={t}"));
        }
        let r =
            Config::resolve_with_warnings(self.preset.as_deref(), self.config.as_deref(), &sets)?;
        for w in &r.warnings {
            eprintln!("warning: {w}");
        }
        Ok(r.config)
    }
}

#[derive(Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub cfg: ConfigArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// How many sequences of training step 0 to render (the first sequence of the first tasks).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub sequences: usize,
    /// How many tasks and inputs to list in the text output (JSON lists all).
    #[arg(long, default_value_t = 12, value_name = "N")]
    pub list: usize,
}

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub cfg: ConfigArgs,
    /// Folder to write into (created if missing; existing files of the same name are replaced).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Write the training batches of steps 0..N-1.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub steps: u64,
    /// Also write the four evaluation sets (eval_<set>_tokens.npy, eval_<set>_task.npy) with
    /// eval.seqs_per_task sequences per task.
    #[arg(long)]
    pub eval: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every argument of every command, positional or option, with no help text.
    fn without_help(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            if a.get_help().is_none() && a.get_long_help().is_none() {
                out.push(format!("{path} {id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            without_help(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_argument_has_help_text() {
        let mut missing = Vec::new();
        without_help(&super::Cli::command(), "modicl", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }

    #[test]
    fn sweep_plan_help_lists_the_sweep_presets() {
        let mut cmd = super::Cli::command();
        let plan = cmd
            .find_subcommand_mut("sweep")
            .unwrap()
            .find_subcommand_mut("plan")
            .unwrap();
        let help = plan.render_long_help().to_string();
        for p in modicl_sweeps::preset::SWEEP_PRESETS {
            assert!(help.contains(p.name), "{} not in {help}", p.name);
        }
        for p in modicl_config::PRESETS {
            assert!(help.contains(p.name), "{} not in {help}", p.name);
        }
    }
}
