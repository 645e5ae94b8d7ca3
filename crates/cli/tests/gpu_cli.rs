//! `modicl` with `--device cuda`, as a user runs it: train, eval and bench on the GPU against
//! the CPU; SIGKILL and resume on the GPU, byte-identical; a run moved between the CPU and the
//! GPU mid-way; and, on the GPU emulator (tools/gpu/emulator), the faults a real GPU cannot be
//! made to show on demand: out of memory mid-run, and a GPU too small for the batch.
//!
//! Needs a GPU or the emulator: without either every test prints SKIPPED and the reason
//! (MODICL_REQUIRE_GPU=1 turns that into a failure). `tools/gpu/emulate.sh` runs it on the
//! emulator; `tools/gpu/check.sh` on a real GPU (with MODICL_BIN naming the binary).

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{assert_bad, assert_same, outputs, text};

/// The GPU's name, or None (and SKIPPED printed) without one.
fn gpu() -> Option<String> {
    modicl_cuda::device_or_skip().map(|d| d.name)
}

/// Whether the GPU is the emulator, whose fault switches the last tests use.
fn emulated(name: &str) -> bool {
    name.contains("emulator")
}

/// A temporary folder holding `tiny.toml` (the CLI tests' tiny run: p = 7, d 16).
fn setup() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("tiny.toml"), common::TINY).unwrap();
    tmp
}

/// The tiny run with a checkpoint every 5 steps and no early evaluations.
const TINY: &[&str] = &[
    "--config",
    "tiny.toml",
    "--set",
    "train.save_every=5",
    "--set",
    "train.eval_early=0",
];

/// The binary under test: MODICL_BIN (tools/gpu/check.sh runs a bundled copy of this test on
/// a machine where cargo's path to it does not exist), else the one cargo built.
fn cmd(dir: &Path, args: &[&str]) -> Command {
    let bin = match std::env::var_os("MODICL_BIN") {
        // Absolute, as the commands run in temporary folders.
        Some(b) => std::path::absolute(b).expect("MODICL_BIN"),
        None => env!("CARGO_BIN_EXE_modicl").into(),
    };
    let mut c = Command::new(bin);
    c.args(args).current_dir(dir);
    c
}

fn run(dir: &Path, args: &[&str]) -> Output {
    cmd(dir, args).output().expect("runs")
}

/// `modicl train` of the tiny run for `steps` steps on `device` into `run_dir`.
fn train<'a>(run_dir: &'a str, steps: &'a str, device: &'a str) -> Vec<&'a str> {
    let mut a = vec!["train", "--run-dir", run_dir, "--set", steps];
    a.extend_from_slice(&["--device", device, "--quiet"]);
    a.extend_from_slice(TINY);
    a
}

/// `modicl bench --device cuda --json` of the tiny run, with `extra` arguments: its JSON.
fn bench_json(dir: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["bench", "--device", "cuda", "--steps", "1", "--json"];
    args.extend_from_slice(TINY);
    args.extend_from_slice(extra);
    let o = ok(dir, &args);
    let out = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(out.lines().last().unwrap()).unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> Output {
    let o = run(dir, args);
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    o
}

/// (step, set, loss, correct, count) of every metrics.csv row.
fn metrics(run: &Path) -> Vec<(u64, String, f64, u64, u64)> {
    let text = fs::read_to_string(run.join("metrics.csv")).unwrap();
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| head.iter().position(|h| *h == name).unwrap();
    let (step, set, loss) = (col("step"), col("set"), col("loss"));
    let (correct, count) = (col("correct"), col("count"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[step].parse().unwrap(),
                f[set].to_string(),
                f[loss].parse().unwrap(),
                f[correct].parse().unwrap(),
                f[count].parse().unwrap(),
            )
        })
        .collect()
}

/// Two runs' metrics agree: the same rows, losses within `tol` relative, and correct counts
/// within one answer in a hundred (f32 rounding may flip a near-tie of the argmax).
fn assert_close(a: &Path, b: &Path, tol: f64) {
    let (ma, mb) = (metrics(a), metrics(b));
    assert_eq!(ma.len(), mb.len());
    for (x, y) in ma.iter().zip(&mb) {
        assert_eq!((x.0, &x.1, x.4), (y.0, &y.1, y.4));
        let rel = (x.2 - y.2).abs() / y.2.abs();
        assert!(rel <= tol, "step {} {}: loss {} vs {}", x.0, x.1, x.2, y.2);
        assert!(x.3.abs_diff(y.3) <= x.4.div_ceil(100), "{x:?} vs {y:?}");
    }
}

/// Waits until `run` has a complete checkpoint at `step` or later.
fn wait_for_checkpoint(run: &Path, step: u64) {
    let start = Instant::now();
    loop {
        let newest = fs::read_dir(run.join("checkpoints"))
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let e = e.ok()?;
                let n = e.file_name().to_string_lossy().into_owned();
                let s: u64 = n.strip_prefix("step_")?.parse().ok()?;
                e.path().join("DONE").exists().then_some(s)
            })
            .max();
        if newest.is_some_and(|s| s >= step) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "no checkpoint");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn train_eval_and_bench_on_the_gpu_follow_the_cpu() {
    let Some(_) = gpu() else { return };
    let tmp = setup();
    let dir = tmp.path();
    ok(dir, &train("cpu", "train.steps=20", "cpu"));
    ok(dir, &train("gpu", "train.steps=20", "cuda"));
    assert_close(&dir.join("gpu"), &dir.join("cpu"), 1e-4);
    let summary = fs::read_to_string(dir.join("gpu/summary.json")).unwrap();
    assert!(summary.contains("\"device\": \"cuda: "), "{summary}");
    assert!(summary.contains(", f32, warp attention\""), "{summary}");
    // The kernels compiled once, into the run's cache.
    assert!(fs::read_dir(dir.join("gpu/cuda-cache")).unwrap().count() >= 4);

    // modicl eval on either device: the same counts and losses.
    let eval = |device: &str| -> serde_json::Value {
        let o = ok(dir, &["eval", "gpu", "--device", device, "--json"]);
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let (c, g) = (eval("cpu"), eval("cuda"));
    let sets = |v: &serde_json::Value| v["sets"].as_array().unwrap().clone();
    assert_eq!(sets(&c).len(), 4);
    for (a, b) in sets(&c).iter().zip(&sets(&g)) {
        assert_eq!(a["set"], b["set"]);
        let (la, lb) = (a["loss"].as_f64().unwrap(), b["loss"].as_f64().unwrap());
        assert!((la - lb).abs() <= 1e-4 * la.abs(), "{a} vs {b}");
        let (x, y) = (
            a["acc_last"].as_f64().unwrap(),
            b["acc_last"].as_f64().unwrap(),
        );
        assert!((x - y).abs() <= 0.02, "{a} vs {b}");
    }

    // modicl bench on the GPU reports the device, its memory and a step time.
    let json = bench_json(dir, &[]);
    assert!(json["ms_per_step"].as_f64().unwrap() > 0.0, "{json}");
    assert!(json["device_mem_mb"].as_f64().unwrap() > 0.0, "{json}");
    assert_ne!(json["device"], "cpu", "{json}");
}

#[test]
fn bench_profile_says_where_the_device_time_goes() {
    let Some(_) = gpu() else { return };
    let tmp = setup();
    let json = bench_json(tmp.path(), &["--profile"]);
    let ops = json["profile"].as_array().unwrap();
    let op = |name: &str| ops.iter().find(|o| o["op"] == name);
    // Each of the tiny model's 2 blocks runs attention once per step, AdamW runs once, and the
    // QKV product's forward (d 16 -> 48 over 16 x 17 rows) is among the products.
    assert_eq!(op("attn_fwd").unwrap()["calls_per_step"], 2, "{json}");
    assert_eq!(op("adamw").unwrap()["calls_per_step"], 1, "{json}");
    assert!(op("f32 gemm TN 48x272x16").is_some(), "{json}");
    let total: f64 = ops.iter().map(|o| o["ms_per_step"].as_f64().unwrap()).sum();
    let step = json["ms_per_step"].as_f64().unwrap();
    assert!(
        total > 0.0 && total < 2.0 * step,
        "{total} ms of ops in a {step} ms step"
    );
    // Sorted, the costliest first.
    let ms: Vec<f64> = ops
        .iter()
        .map(|o| o["ms_per_step"].as_f64().unwrap())
        .collect();
    assert!(ms.windows(2).all(|w| w[0] >= w[1]), "{ms:?}");
    assert_eq!(json["attention"], "warp", "{json}");

    // The batched-GEMM attention: its softmax kernel and per-head products instead, 2 heads
    // of width 8 over 17 tokens, batched over the 16 sequences.
    let json = bench_json(tmp.path(), &["--profile", "--attention", "gemm"]);
    assert_eq!(json["attention"], "gemm", "{json}");
    let ops = json["profile"].as_array().unwrap();
    let op = |name: &str| ops.iter().find(|o| o["op"] == name);
    assert!(op("attn_fwd").is_none(), "{json}");
    assert_eq!(op("softmax_causal").unwrap()["calls_per_step"], 2, "{json}");
    // Q·Kᵀ forward and Vᵀ·dz backward share a shape: per block, per head, each once.
    let scores = op("f32 batched gemm TN 17x17x8 x16").unwrap();
    assert_eq!(scores["calls_per_step"], 2 * 2 * 2, "{json}");
}

#[test]
fn the_memory_check_counts_every_buffer() {
    let Some(name) = gpu() else { return };
    if !emulated(&name) {
        // A real GPU also counts cuBLAS's workspaces and the allocator's rounding.
        eprintln!("SKIPPED: exact device memory accounting needs the GPU emulator");
        return;
    }
    // What the model allocates, measured, against what the check before a run predicts
    // (GpuModel::bytes_needed), for both activations and all three precisions.
    let tmp = setup();
    for (act, precision) in [("relu", "f32"), ("gelu", "tf32"), ("relu", "bf16")] {
        let (a, p) = (
            format!("model.act={act}"),
            format!("train.precision={precision}"),
        );
        let json = bench_json(tmp.path(), &["--set", &a, "--set", &p]);
        let used = json["device_mem_mb"].as_f64().unwrap();
        let predicted = json["device_mem_estimate_mb"].as_f64().unwrap();
        // The estimate may round up (the bf16 copies are sized for the largest operand any
        // product could have), never down.
        assert!(
            used <= predicted && used >= 0.9 * predicted,
            "{act} {precision}: {used} MiB used, {predicted} MiB predicted"
        );
    }
}

#[test]
fn sigkill_then_resume_on_the_gpu_is_byte_identical() {
    let Some(_) = gpu() else { return };
    let tmp = setup();
    let dir = tmp.path();
    let steps = "train.steps=30";
    ok(dir, &train("straight", steps, "cuda"));
    let want = outputs(&dir.join("straight"));

    // Killed once a checkpoint is written, twice; then resumed to the end.
    let mut child = cmd(dir, &train("killed", steps, "cuda"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for step in [5, 15] {
        wait_for_checkpoint(&dir.join("killed"), step);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        child = cmd(dir, &["train", "--resume", "killed", "--device", "cuda"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    }
    assert!(child.wait().unwrap().success());
    assert_same(&outputs(&dir.join("killed")), &want);
}

#[test]
fn a_run_moves_between_the_cpu_and_the_gpu() {
    let Some(_) = gpu() else { return };
    let tmp = setup();
    let dir = tmp.path();
    let steps = "train.steps=20";
    ok(dir, &train("cpu", steps, "cpu"));
    // Each run stops at step 10 (a checkpoint; SIGKILL right after), then resumes on the
    // other device.
    for (first, then) in [("cuda", "cpu"), ("cpu", "cuda")] {
        let name = format!("from-{first}");
        let mut child = cmd(dir, &train(&name, steps, first))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_checkpoint(&dir.join(&name), 10);
        child.kill().unwrap();
        child.wait().unwrap();
        ok(
            dir,
            &["train", "--resume", &name, "--device", then, "--quiet"],
        );
        assert_close(&dir.join(&name), &dir.join("cpu"), 1e-4);
    }
}

#[test]
fn out_of_memory_mid_run_keeps_the_newest_checkpoint() {
    let Some(name) = gpu() else { return };
    if !emulated(&name) {
        eprintln!("SKIPPED: an out-of-memory on demand needs the GPU emulator");
        return;
    }
    let tmp = setup();
    let dir = tmp.path();
    let steps = "train.steps=20";
    ok(dir, &train("straight", steps, "cuda"));
    // The emulator fails every kernel launch after the first N with CUDA_ERROR_OUT_OF_MEMORY.
    let args = train("r", steps, "cuda");
    let o = cmd(dir, &args)
        .env("MODICL_EMU_LAUNCHES_BEFORE_OOM", "700")
        .output()
        .unwrap();
    assert_bad(
        &o,
        &args,
        &[
            "out of GPU memory",
            "the run stopped, its newest checkpoint is kept (step ",
            "--resume",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    let at = |key: &str| -> u64 {
        let rest = &err[err.find(key).unwrap() + key.len()..];
        rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap()]
            .parse()
            .unwrap()
    };
    let (failed, kept) = (at("at step "), at("is kept (step "));
    assert!(kept > 0 && kept < failed && failed < 20, "{err}");
    assert!(!dir.join("r/DONE").exists());
    let v = run(dir, &["verify", "r"]);
    assert!(v.status.success(), "{}", text(&v));
    // Resumed (with memory to spare), it ends as the uninterrupted run did.
    ok(
        dir,
        &["train", "--resume", "r", "--device", "cuda", "--quiet"],
    );
    assert_eq!(
        fs::read(dir.join("r/metrics.csv")).unwrap(),
        fs::read(dir.join("straight/metrics.csv")).unwrap()
    );
}

#[test]
fn a_gpu_too_small_for_the_batch_says_how_much_is_needed() {
    let Some(name) = gpu() else { return };
    if !emulated(&name) {
        eprintln!("SKIPPED: a small GPU on demand needs the GPU emulator");
        return;
    }
    let tmp = setup();
    let args = [
        "train",
        "--preset",
        "cpu",
        "--device",
        "cuda",
        "--run-dir",
        "r",
    ];
    let o = cmd(tmp.path(), &args)
        .env("MODICL_EMU_MEMORY_MIB", "4")
        .output()
        .unwrap();
    assert_bad(
        &o,
        &args,
        &[
            "--device cuda",
            "MiB of GPU memory",
            "free",
            "lower task.batch",
        ],
    );
    assert!(!tmp.path().join("r").exists(), "a run directory was made");
    let bench = ["bench", "--device", "cuda", "--steps", "1"];
    let o = cmd(tmp.path(), &bench)
        .env("MODICL_EMU_MEMORY_MIB", "4")
        .output()
        .unwrap();
    assert_bad(
        &o,
        &bench,
        &["--device cuda", "GPU memory", "lower task.batch"],
    );
}

#[test]
fn a_run_with_the_gemm_attention_follows_the_warp_one() {
    let Some(_) = gpu() else { return };
    let tmp = setup();
    let dir = tmp.path();
    ok(dir, &train("warp", "train.steps=10", "cuda"));
    let mut args = train("gemm", "train.steps=10", "cuda");
    args.extend(["--attention", "gemm"]);
    ok(dir, &args);
    assert_close(&dir.join("gemm"), &dir.join("warp"), 1e-4);
    let summary = fs::read_to_string(dir.join("gemm/summary.json")).unwrap();
    assert!(summary.contains(", gemm attention\""), "{summary}");
}

#[test]
fn tf32_and_bf16_runs_train_and_say_so() {
    let Some(_) = gpu() else { return };
    let tmp = setup();
    let dir = tmp.path();
    let steps = "train.steps=10";
    ok(dir, &train("f32", steps, "cuda"));
    for p in ["tf32", "bf16"] {
        let set = format!("train.precision={p}");
        let mut args = train(p, steps, "cuda");
        args.extend(["--set", &set]);
        ok(dir, &args);
        let summary = fs::read_to_string(dir.join(p).join("summary.json")).unwrap();
        assert!(
            summary.contains(&format!(", {p}, warp attention\"")),
            "{summary}"
        );
        // Reduced-precision products: the losses follow the f32 run's within the stated
        // tolerance of the products (docs/engine.md), not bit for bit.
        let (a, b) = (metrics(&dir.join(p)), metrics(&dir.join("f32")));
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x.2 - y.2).abs() <= 5e-2 * y.2,
                "{p} step {}: {x:?} vs {y:?}",
                x.0
            );
        }
        // And the precision took effect: the products were rounded.
        let same = a.iter().zip(&b).all(|(x, y)| x.2 == y.2);
        assert!(!same, "{p} gave the f32 run's losses exactly");
    }
}

#[test]
fn a_sweep_trains_its_runs_on_the_gpu() {
    let Some(_) = gpu() else { return };
    let tmp = setup();
    let dir = tmp.path();
    let plan = [
        "sweep",
        "plan",
        "sw",
        "--config",
        "tiny.toml",
        "--grid",
        "task.n_base=1,2",
    ];
    ok(dir, &plan);
    let o = ok(dir, &["sweep", "run", "sw", "--device", "cuda", "--quiet"]);
    assert!(text(&o).contains("2 of 2 runs done"), "{}", text(&o));
    for run in ["n_base1", "n_base2"] {
        let s = fs::read_to_string(dir.join("sw/runs").join(run).join("summary.json"));
        let s = s.unwrap_or_else(|e| panic!("{run}: {e}"));
        assert!(s.contains("\"device\": \"cuda: "), "{s}");
    }
}
