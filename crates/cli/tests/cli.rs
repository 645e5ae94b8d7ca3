//! Runs the `modicl` binary in a temporary directory and checks output and exit codes.

use std::path::Path;
use std::process::{Command, Output};

use modicl_data::npy::decode_i64;

/// The paper's depth-4 task setup with generated tasks, under the default (cpu) preset's
/// other settings. The `data` tests below were written against it.
const D4_DATA: &[&str] = &[
    "--set",
    "task.p=29",
    "--set",
    "task.n_base=96",
    "--set",
    "task.examples=32",
    "--set",
    "task.batch=1536",
];

/// Runs `modicl ARGS`; `data show|export` get [`D4_DATA`] first, so the test's own overrides
/// (applied later) win; not with --config, which comes before every --set. With `--tasks` (a
/// file or official list brings its own tasks) `task.n_base` is left out, as setting it would
/// rightly draw the warning that the source ignores it.
fn modicl(dir: &Path, args: &[&str]) -> Output {
    let mut full: Vec<&str> = Vec::new();
    if args.first() == Some(&"data") && args.len() >= 2 && !args.contains(&"--config") {
        full.extend_from_slice(&args[..2]);
        let own_tasks = args.contains(&"--tasks");
        for pair in D4_DATA.chunks(2) {
            if !(own_tasks && pair[1].starts_with("task.n_base=")) {
                full.extend_from_slice(pair);
            }
        }
        full.extend_from_slice(&args[2..]);
    } else {
        full.extend_from_slice(args);
    }
    Command::new(env!("CARGO_BIN_EXE_modicl"))
        .args(&full)
        .current_dir(dir)
        .output()
        .expect("runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Expects exit status 2 and a one-line error that contains every `needles`.
fn bad_input(dir: &Path, args: &[&str], needles: &[&str]) {
    let o = modicl(dir, args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: stderr {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: one line expected, got {err}"
    );
    assert!(err.starts_with("error: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: '{n}' not in {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

fn json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let o = modicl(dir, args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    serde_json::from_str(&stdout(&o)).expect("valid JSON")
}

#[test]
fn show_prints_counts_and_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let o = modicl(dir.path(), &["data", "show"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for needle in [
        "i.d. tasks    384 (96 parallelogram groups",
        "o.o.d. tasks  256",
        "673 train",
        "168 test",
        "layout shared",
        "row     0",
    ] {
        assert!(out.contains(needle), "'{needle}' missing from:\n{out}");
    }
}

#[test]
fn show_json_has_the_documented_keys_and_paper_counts() {
    let dir = tempfile::tempdir().unwrap();
    let v = json(
        dir.path(),
        &[
            "data",
            "show",
            "--json",
            "--set",
            "task.n_base=128",
            "--set",
            "task.alpha=0.6",
            "--set",
            "task.batch=1024",
        ],
    );
    assert_eq!(v["n_id_tasks"], 512);
    assert_eq!(v["n_ood_tasks"], 256);
    assert_eq!(v["n_train_inputs"], 505);
    assert_eq!(v["n_test_inputs"], 336);
    assert_eq!(v["id_tasks"].as_array().unwrap().len(), 512);
    assert_eq!(v["ood_tasks"].as_array().unwrap().len(), 256);
    assert_eq!(v["config"]["task.batch"], 1024);
    let seq = &v["sample_sequences"][0];
    let (a, b) = (
        seq["task"][0].as_u64().unwrap(),
        seq["task"][1].as_u64().unwrap(),
    );
    for e in seq["tokens"].as_array().unwrap().chunks(3) {
        let (x, y, z) = (
            e[0].as_u64().unwrap(),
            e[1].as_u64().unwrap(),
            e[2].as_u64().unwrap(),
        );
        assert_eq!(z, (a * x + b * y) % 29);
    }
}

#[test]
fn official_lists_via_tasks_flag() {
    let dir = tempfile::tempdir().unwrap();
    let v = json(
        dir.path(),
        &[
            "data",
            "show",
            "--json",
            "--tasks",
            "official:seed=1,n_base=96",
        ],
    );
    assert_eq!(v["n_id_tasks"], 384);
    assert_eq!(v["n_ood_tasks"], 256);
    let ood = v["ood_tasks"].as_array().unwrap();
    assert!(
        ood.contains(&serde_json::json!([6, 6])),
        "(6, 6) must be o.o.d."
    );
    assert_eq!(v["id_tasks"][0], serde_json::json!([4, 21]));
}

#[test]
fn config_file_and_overrides_compose_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[task]\np = 31\nn_base = 8\nbatch = 64\n",
    )
    .unwrap();
    let v = json(
        dir.path(),
        &[
            "data",
            "show",
            "--json",
            "--config",
            "c.toml",
            "--set",
            "task.alpha=0.5",
        ],
    );
    assert_eq!(
        (v["p"].as_u64(), v["n_id_tasks"].as_u64()),
        (Some(31), Some(32))
    );
    assert_eq!(v["n_train_inputs"], 480); // round_half_even(0.5 · 961) = 480
    let o = modicl(
        dir.path(),
        &[
            "config",
            "show",
            "--config",
            "c.toml",
            "--set",
            "task.alpha=0.5",
        ],
    );
    std::fs::write(dir.path().join("resolved.toml"), o.stdout).unwrap();
    let w = json(
        dir.path(),
        &["data", "show", "--json", "--config", "resolved.toml"],
    );
    assert_eq!(v, w, "the printed config reproduces the run");
    let keys = stdout(&modicl(dir.path(), &["config", "keys"]));
    assert!(
        keys.contains("task.alpha = 0.8")
            && keys.contains("allowed: a number in the open interval (0, 1)")
    );
}

#[test]
fn export_writes_numpy_files() {
    let dir = tempfile::tempdir().unwrap();
    let o = modicl(
        dir.path(),
        &[
            "data",
            "export",
            "--out",
            "ex",
            "--steps",
            "3",
            "--eval",
            "--set",
            "task.n_base=8",
            "--set",
            "task.batch=64",
            "--set",
            "eval.seqs_per_task=2",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let read =
        |name: &str| decode_i64(&std::fs::read(dir.path().join("ex").join(name)).unwrap()).unwrap();
    let (s, id) = read("id_tasks.npy");
    assert_eq!(s, [32, 2]);
    let (s, _) = read("ood_tasks.npy");
    assert_eq!(s, [256, 2]);
    let (s, train) = read("train_inputs.npy");
    let (t, _) = read("test_inputs.npy");
    assert_eq!((s[0] + t[0], s[1]), (841, 2));
    for step in 0..3 {
        let (s, tokens) = read(&format!("batch_{step}_tokens.npy"));
        assert_eq!(s, [64, 96]);
        let (s, task) = read(&format!("batch_{step}_task.npy"));
        assert_eq!(s, [64]);
        for (r, &t) in task.iter().enumerate() {
            let (a, b) = (id[2 * t as usize], id[2 * t as usize + 1]);
            for e in tokens[r * 96..(r + 1) * 96].chunks(3) {
                assert_eq!(e[2], (a * e[0] + b * e[1]) % 29);
                assert!(
                    train.chunks(2).any(|x| x == &e[..2]),
                    "training inputs only"
                );
            }
        }
    }
    assert!(!dir.path().join("ex/batch_3_tokens.npy").exists());
    let (s, _) = read("eval_ood_test_tokens.npy");
    assert_eq!(s, [512, 96]);
    let (s, _) = read("eval_id_train_task.npy");
    assert_eq!(s, [64]);
    let cfg = std::fs::read_to_string(dir.path().join("ex/config.toml")).unwrap();
    assert!(cfg.contains("n_base = 8"));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("ex"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
    // Same config, same bytes.
    let o = modicl(
        dir.path(),
        &[
            "data",
            "export",
            "--out",
            "ex2",
            "--steps",
            "3",
            "--set",
            "task.n_base=8",
            "--set",
            "task.batch=64",
        ],
    );
    assert!(o.status.success());
    for f in ["id_tasks.npy", "batch_2_tokens.npy", "train_inputs.npy"] {
        assert_eq!(
            std::fs::read(dir.path().join("ex").join(f)).unwrap(),
            std::fs::read(dir.path().join("ex2").join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn bad_input_is_a_one_line_error_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Each case: the arguments after `data show`, and what the error must say.
    let cases: &[(&[&str], &[&str])] = &[
        (&["--set", "task.p=1"], &["task.p = 1", "2..=65536"]),
        (
            &["--set", "task.alpha=1.5"],
            &["task.alpha = 1.5", "(0, 1)"],
        ),
        (&["--set", "task.alpha=0"], &["task.alpha = 0"]),
        (
            &["--set", "task.n_base=300"],
            &["task.n_base = 300", "<= p^n_var - 1 = 840"],
        ),
        (
            &["--set", "task.n_random=700"],
            &["task.n_base", "n_random 700"],
        ),
        (
            &["--set", "task.examples=0"],
            &["task.examples = 0", "1..=4096"],
        ),
        (
            &["--set", "task.batch=1000"],
            &["task.batch = 1000", "multiple of the 384", "768 or 1152"],
        ),
        (
            &["--set", "task.nbase=3"],
            &["unknown key task.nbase", "task.n_base"],
        ),
        (&["--set", "task.p"], &["malformed override"]),
        (
            &["--tasks", "file:missing.txt"],
            &["task.source = 'file:missing.txt'", "cannot read"],
        ),
        (
            &["--tasks", "official:seed=7,n_base=96"],
            &["official:seed=1,n_base=2"],
        ),
        (&["--tasks", "elsewhere"], &["task.source = 'elsewhere'"]),
    ];
    for (args, needles) in cases {
        let args: Vec<&str> = ["data", "show"]
            .iter()
            .chain(args.iter())
            .copied()
            .collect();
        bad_input(d, &args, needles);
    }
    std::fs::write(d.join("bad.txt"), "1 2\n3 99\n").unwrap();
    bad_input(
        d,
        &["data", "show", "--tasks", "file:bad.txt"],
        &["line 2", "component 99 outside 0..=28"],
    );
    std::fs::write(d.join("bad.json"), "{\"pretrain\": []}").unwrap();
    bad_input(
        d,
        &["data", "show", "--tasks", "file:bad.json"],
        &["pretrain_tasks"],
    );
    std::fs::write(d.join("bad.toml"), "[task\n").unwrap();
    bad_input(
        d,
        &["data", "show", "--config", "bad.toml"],
        &["bad.toml: not valid TOML"],
    );
    bad_input(
        d,
        &["data", "show", "--config", "nope.toml"],
        &["cannot read config file nope.toml"],
    );
    std::fs::write(d.join("range.toml"), "[task]\nalpha = 2.0\n").unwrap();
    bad_input(
        d,
        &["data", "show", "--config", "range.toml"],
        &["task.alpha = 2.0"],
    );
    // clap's own usage errors also exit 2.
    assert_eq!(
        modicl(d, &["data", "show", "--bogus"]).status.code(),
        Some(2)
    );
    assert_eq!(
        modicl(d, &["data", "show", "--help"]).status.code(),
        Some(0)
    );
}

#[test]
fn non_prime_modulus_warns_but_runs() {
    let dir = tempfile::tempdir().unwrap();
    let o = modicl(dir.path(), &["data", "show", "--set", "task.p=28"]);
    assert!(o.status.success());
    assert_eq!(
        stderr(&o)
            .matches("warning: task.p = 28 is not prime")
            .count(),
        1,
        "{}",
        stderr(&o)
    );
    let o = modicl(dir.path(), &["data", "show", "--set", "task.p=31"]);
    assert!(!stderr(&o).contains("warning"));
    // Every command that resolves a configuration says it, once.
    let p28 = ["--set", "task.p=28", "--set", "task.batch=16"];
    let commands: [&[&str]; 5] = [
        &["config", "show"],
        &["data", "export", "--out", "ex"],
        &["sweep", "plan", "sw", "--grid", "optim.lr=0.001,0.002"],
        &[
            "bench",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--set",
            "model.d_model=16",
        ],
        &[
            "train",
            "--run-dir",
            "r",
            "--set",
            "train.steps=2",
            "--set",
            "train.warmup=1",
        ],
    ];
    for c in commands {
        let args: Vec<&str> = c.iter().chain(p28.iter()).copied().collect();
        let o = Command::new(env!("CARGO_BIN_EXE_modicl"))
            .args(&args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert_eq!(
            stderr(&o).matches("task.p = 28 is not prime").count(),
            1,
            "{args:?}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn the_official_source_brings_its_own_p_and_a_batch_that_fits() {
    let dir = tempfile::tempdir().unwrap();
    // Under the default (cpu) preset, p = 11 and batch 128: the official lists are over
    // Z_29^2 with 4·n_base tasks.
    let args = ["config", "show", "--tasks", "official:seed=1,n_base=8"];
    let o = modicl(dir.path(), &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let toml = stdout(&o);
    assert!(
        toml.contains("p = 29\n") && toml.contains("batch = 128\n"),
        "{toml}"
    );
    assert!(
        stderr(&o).contains("task.p = 29 (was 11)"),
        "{}",
        stderr(&o)
    );
    let o = modicl(
        dir.path(),
        &["config", "show", "--tasks", "official:seed=1,n_base=96"],
    );
    assert!(stdout(&o).contains("batch = 384\n"), "{}", stdout(&o));
    assert!(stderr(&o).contains("task.batch = 384 (was 128)"));
    // What the user sets wins, and is then checked as usual.
    let o = modicl(
        dir.path(),
        &[
            "config",
            "show",
            "--tasks",
            "official:seed=1,n_base=8",
            "--set",
            "task.batch=64",
        ],
    );
    assert!(stdout(&o).contains("batch = 64\n") && !stderr(&o).contains("task.batch"));
    let args = [
        "data",
        "show",
        "--tasks",
        "official:seed=1,n_base=8",
        "--set",
        "task.p=31",
    ];
    let o = Command::new(env!("CARGO_BIN_EXE_modicl"))
        .args(args)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // The README's command, as written.
    let o = Command::new(env!("CARGO_BIN_EXE_modicl"))
        .args(["data", "show", "--tasks", "official:seed=1,n_base=96"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("i.d. tasks    384"), "{}", stdout(&o));
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    // Far more than a pipe holds (about 330 kB), so the writer meets the closed end.
    let mut child = Command::new(env!("CARGO_BIN_EXE_modicl"))
        .args(["data", "show", "--json", "--set", "task.p=101"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 64];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    // The read end is dropped here, as `| head -c 64` does.
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
    assert_ne!(o.status.code(), Some(101), "{err}");
}

#[test]
fn export_to_an_unwritable_place_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "").unwrap();
    let o = modicl(dir.path(), &["data", "export", "--out", "file/sub"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("error: exporting to file/sub: cannot write"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bench_reports_the_documented_json_keys() {
    let dir = tempfile::tempdir().unwrap();
    let v = json(
        dir.path(),
        &[
            "bench",
            "--model",
            "small",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--threads",
            "1",
            "--json",
        ],
    );
    for key in ["ms_per_step", "tokens_per_s", "gflops", "peak_rss_mb"] {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key} in {v}");
    }
    assert_eq!(v["model"], "small");
    assert_eq!(v["threads"], 1);
    assert_eq!(v["params"], 1_587_456, "d 256, 2 blocks, vocab 47, tied");
    assert_eq!(
        modicl(dir.path(), &["bench", "--model", "huge"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        modicl(dir.path(), &["bench", "--threads", "0"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn bench_times_the_engines_shards_or_the_ones_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let args = |extra: &[&'static str]| {
        let mut a = vec![
            "bench", "--preset", "cpu", "--steps", "1", "--warmup", "0", "--json",
        ];
        a.extend_from_slice(extra);
        a
    };
    // The cpu preset (d 64, batch 128) trains in 8 shards; --shards 1 times the unsplit batch.
    assert_eq!(json(dir.path(), &args(&[]))["shards"], 8);
    let one = json(dir.path(), &args(&["--shards", "1"]));
    assert_eq!(one["shards"], 1);
    // The first step's loss is the forward pass of the same weights: the same bits either way.
    assert_eq!(
        one["loss_first"],
        json(dir.path(), &args(&[]))["loss_first"]
    );
    let o = modicl(dir.path(), &args(&["--shards", "0"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn bench_refuses_a_reference_size_and_a_configuration_at_once() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        ["bench", "--preset", "cpu", "--model", "paper"],
        ["bench", "--model", "small", "--set", "task.p=7"],
    ] {
        let o = modicl(dir.path(), &args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        let first = err.lines().next().unwrap_or("");
        assert!(
            first.starts_with("error: ")
                && first.contains("--model")
                && first.contains("cannot be used"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn device_cuda_is_a_one_line_error_when_it_cannot_run() {
    // Where there is no GPU: a one-line error naming --device cuda (and what is missing), exit
    // status 2, before anything is written.
    let tmp = tempfile::tempdir().unwrap();
    let gpu_here = Path::new("/dev/nvidia0").exists();
    let mut cases = vec![];
    if !gpu_here {
        cases.push(&["eval", "r", "--device", "cuda"][..]);
        cases.push(&["train", "--device", "cuda", "--run-dir", "r"]);
        cases.push(&["bench", "--device", "cuda"]);
        cases.push(&["sweep", "run", "sw", "--device", "cuda"]);
        cases.push(&["sweep", "run-one", "sw", "--index", "0", "--device", "cuda"]);
    }
    for args in cases {
        bad_input(tmp.path(), args, &["--device cuda"]);
    }
    // TF32 and bf16 are GPU arithmetic: on the CPU they are refused, naming the key.
    for p in ["tf32", "bf16"] {
        let set = format!("train.precision={p}");
        bad_input(
            tmp.path(),
            &["train", "--set", &set, "--run-dir", "r"],
            &["train.precision", p, "--device cuda"],
        );
        let bench = ["bench", "--preset", "cpu", "--set", &set, "--steps", "1"];
        bad_input(tmp.path(), &bench, &["train.precision", p, "--device cuda"]);
    }
    // Profiling times device operations: the CPU has none.
    let bench = ["bench", "--steps", "1", "--profile"];
    bad_input(tmp.path(), &bench, &["--profile", "--device cuda"]);
    let needles = ["--attention", "gemm", "--device cuda"];
    bad_input(tmp.path(), &["bench", "--attention", "gemm"], &needles);
    let train = ["train", "--attention", "gemm", "--run-dir", "r"];
    bad_input(tmp.path(), &train, &needles);
    assert!(!tmp.path().join("r").exists(), "a run directory was made");
}
