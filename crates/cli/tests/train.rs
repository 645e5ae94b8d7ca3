//! `modicl train`, `eval` and `plot` as a user runs them: killed with SIGKILL at arbitrary
//! moments and resumed, the run ends byte-identical to an uninterrupted one; Ctrl-C exits 130
//! with a checkpoint; bad input exits 2 with one line.

mod common;

use common::{assert_same, outputs};

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const TINY: &[&str] = &[
    "--set",
    "task.p=7",
    "--set",
    "task.n_base=2",
    "--set",
    "task.batch=16",
    "--set",
    "task.examples=6",
    "--set",
    "model.d_model=16",
    "--set",
    "model.heads=2",
    "--set",
    "model.layers=2",
    "--set",
    "optim.lr=3e-3",
    "--set",
    "train.warmup=20",
    "--set",
    "train.eval_every=25",
    "--set",
    "train.checkpoints=log:4",
    "--set",
    "train.save_every=7",
    "--set",
    "eval.seqs_per_task=2",
    "--threads",
    "1",
    "--quiet",
];

fn cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_modicl"));
    c.args(args).current_dir(dir);
    c
}

fn run(dir: &Path, args: &[&str]) -> Output {
    cmd(dir, args).output().expect("runs")
}

fn train_args<'a>(run_dir: &'a str, steps: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["train", "--run-dir", run_dir, "--set", steps];
    a.extend_from_slice(TINY);
    a.extend_from_slice(extra);
    a
}

fn spawn(dir: &Path, args: &[&str]) -> Child {
    cmd(dir, args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns")
}

#[test]
fn sigkill_at_any_moment_then_resume_is_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let steps = "train.steps=1500";
    let o = run(tmp.path(), &train_args("straight", steps, &[]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = outputs(&tmp.path().join("straight"));

    // Kill at pseudo-random moments: during start-up, steps, evaluations and checkpoint writes.
    let mut child = spawn(tmp.path(), &train_args("killed", steps, &[]));
    let mut kills = 0;
    let mut delay: u64 = 17;
    for _ in 0..8 {
        delay = (delay * 7919 + 13) % 400 + 40;
        std::thread::sleep(Duration::from_millis(delay));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
        child = spawn(
            tmp.path(),
            &["train", "--resume", "killed", "--quiet", "--threads", "1"],
        );
    }
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(kills >= 4, "only {kills} kills landed mid-run");
    assert_same(&outputs(&tmp.path().join("killed")), &want);
    let leftovers: Vec<String> = fs::read_dir(tmp.path().join("killed/checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn ctrl_c_checkpoints_and_exits_130_then_resume_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let child = spawn(tmp.path(), &train_args("r", "train.steps=200000", &[]));
    let metrics = tmp.path().join("r/metrics.csv");
    let start = Instant::now();
    // Until the evaluation at step 25 (past the early log-spaced ones) is written.
    let past_25 = |m: String| {
        m.lines()
            .filter_map(|l| l.split(',').next()?.parse::<u64>().ok())
            .any(|s| s >= 25)
    };
    while !fs::read_to_string(&metrics).is_ok_and(past_25) {
        assert!(start.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains("interrupted at step") && err.contains("--resume"),
        "{err}"
    );
    let run = tmp.path().join("r");
    assert!(!run.join("DONE").exists());
    let cks: Vec<u64> = fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            n.strip_prefix("step_").and_then(|s| s.parse().ok())
        })
        .collect();
    let newest = *cks.iter().max().expect("a checkpoint");
    assert!(newest >= 25, "{cks:?}");
    assert!(run.join(format!("checkpoints/step_{newest}/DONE")).exists());
    // The resumed process starts from that checkpoint (it says so before its first step).
    let mut child = cmd(
        tmp.path(),
        &["train", "--resume", "r", "--quiet", "--threads", "1"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains(&format!("resuming at step {newest}")), "{out}");
}

#[test]
fn train_eval_and_plot_write_what_they_say() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(tmp.path(), &train_args("r", "train.steps=120", &[]));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for needle in ["final metrics (step 120)", "ood_test", "plots/curves.png"] {
        assert!(out.contains(needle), "'{needle}' not in {out}");
    }
    // The early-stopped table, or the line saying that its o.o.d. accuracy is chance: one of
    // the two (the rule itself is tested in the trainer: eval::within_chance_noise).
    let table = out.contains("early-stopped metrics");
    let noise = out.contains("no early-stopped result") && out.contains("within sampling noise");
    assert!(table != noise, "{out}");
    assert!(
        out.contains("task.p") && out.contains("optim.lr"),
        "config table printed"
    );
    let run_dir = tmp.path().join("r");
    for f in [
        "plots/curves.png",
        "plots/curves.svg",
        "plots/shots.png",
        "plots/shots.svg",
    ] {
        let bytes = fs::read(run_dir.join(f)).unwrap();
        if f.ends_with(".png") {
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{f}");
        } else {
            assert!(String::from_utf8_lossy(&bytes).contains("<svg"), "{f}");
        }
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&fs::read(run_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["last"]["step"], 120);
    // Each set's last-shot accuracy read against the two algorithms, and the second label.
    for set in ["id_train", "id_test", "ood_train", "ood_test"] {
        let m = &summary["last"]["sets"][set];
        let (acc, rm, mr) = (
            m["acc_last"].as_f64().unwrap(),
            m["rm_last"].as_f64().unwrap(),
            m["mr_last"].as_f64().unwrap(),
        );
        assert!(rm > 0.0 && rm <= mr && mr <= 1.0 + 1e-9, "{set}: {m}");
        assert!(
            (m["rm_frac"].as_f64().unwrap() - acc / rm).abs() < 1e-12,
            "{m}"
        );
        assert!(
            (m["mr_frac"].as_f64().unwrap() - acc / mr).abs() < 1e-12,
            "{m}"
        );
    }
    assert!(summary["last"]["ood_gen_rm"].is_boolean(), "{summary}");
    assert_eq!(summary["early_stop"], "acc_last");
    assert!(summary.get("interventions").is_none(), "{summary}");
    assert!(out.contains("rm_last") && out.contains("of_mr"), "{out}");
    let acc = summary["last"]["sets"]["id_train"]["acc_last"]
        .as_f64()
        .unwrap();
    assert!((0.0..=1.0).contains(&acc));

    // The checkpoint holds the whole official state_dict, with format version and config hash.
    let model = fs::read(run_dir.join("checkpoints/step_120/model.safetensors")).unwrap();
    let n = u64::from_le_bytes(model[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&model[8..8 + n]).unwrap();
    for key in [
        "transformer.wte.weight",
        "lm_head.weight",
        "transformer.h.1.attn.rotary_emb.freqs",
        "transformer.ln_f.weight",
    ] {
        assert!(header.get(key).is_some(), "{key} missing");
    }
    assert_eq!(
        header["transformer.h.1.attn.rotary_emb.freqs"]["shape"],
        serde_json::json!([4])
    );
    assert_eq!(header["__metadata__"]["format_version"], "2");
    assert_eq!(header["__metadata__"]["step"], "120");
    assert!(
        header["__metadata__"]["config_hash"]
            .as_str()
            .unwrap()
            .len()
            == 16
    );

    for which in ["last", "best_ood", "120"] {
        let v = common::eval_json(tmp.path(), "r", which, "1");
        let sets = v["sets"].as_array().unwrap();
        assert_eq!(sets.len(), 4);
        for s in sets {
            assert_eq!(s["acc_per_shot"].as_array().unwrap().len(), 6);
        }
    }
    let ev = run_dir.join("eval/step_120");
    for f in ["shots.csv", "eval.json", "shots.png", "shots.svg"] {
        assert!(ev.join(f).is_file(), "{f}");
    }
    // A checkpoint directory works as well as the run directory.
    let o = run(
        tmp.path(),
        &["eval", "r/checkpoints/step_120", "--threads", "1"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("shot"));

    let o = run(tmp.path(), &["plot", "curves", "r", "--out", "c"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(tmp.path().join("c.png").is_file() && tmp.path().join("c.svg").is_file());

    // Finished runs stay finished.
    let o = run(tmp.path(), &["train", "--resume", "r"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("already finished"));
}

/// A task-count curriculum: `train` prints the tasks each stage adds (read before they enter
/// and at the end), draws them (plots/stages) and the report shows both, with the
/// interventions named.
#[test]
fn a_task_count_curriculum_reports_the_tasks_each_stage_adds() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = ["--set", "curriculum.tasks=2@0,4@25,8@50"];
    let o = run(tmp.path(), &train_args("c", "train.steps=75", &extra));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains("tasks added by the task-count curriculum"),
        "{out}"
    );
    // One row per stage that adds tasks: stage, first step index, tasks added, and the
    // evaluation before they entered.
    let rows: Vec<Vec<&str>> = out
        .lines()
        .filter(|l| l.contains(" | "))
        .map(|l| l.split_whitespace().collect())
        .filter(|f: &Vec<&str>| f[0].parse::<u32>().is_ok())
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(rows[0][..5], ["1", "25", "2", "|", "25"]);
    assert_eq!(rows[1][..5], ["2", "50", "4", "|", "50"]);
    let dir = tmp.path().join("c");
    for f in ["stages.csv", "plots/stages.png", "plots/stages.svg"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["stages"][1]["before"]["step"], 50, "{summary}");
    assert_eq!(summary["interventions"].as_array().unwrap().len(), 1);
    let page = fs::read_to_string(dir.join("report.html")).unwrap();
    for needle in [
        "Training interventions",
        "Tasks added by the curriculum",
        "plots/stages",
    ] {
        assert!(page.contains(needle), "'{needle}' not in the report");
    }
    // verify reads stages.csv back, and finds a row that names another stage's start.
    let o = run(tmp.path(), &["verify", "c"]);
    let v = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success() && v.contains("stages.csv"), "{v}");
    let st = fs::read_to_string(dir.join("stages.csv")).unwrap();
    fs::write(
        dir.join("stages.csv"),
        st.replacen(",2,50,4,", ",2,51,4,", 1),
    )
    .unwrap();
    let o = run(tmp.path(), &["verify", "c"]);
    let v = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(1), "{v}");
    assert!(
        v.lines()
            .any(|l| l.contains("BAD") && l.contains("stages.csv")),
        "{v}"
    );
}

fn bad_input(dir: &Path, args: &[&str], needles: &[&str]) {
    common::assert_bad(&run(dir, args), args, needles);
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    bad_input(
        d,
        &["train", "--preset", "nope"],
        &["--preset", "'nope'", "paper-d4"],
    );
    bad_input(
        d,
        &["train", "--set", "model.d_model=30"],
        &["model.d_model = 30", "multiple of"],
    );
    bad_input(
        d,
        &["train", "--set", "train.warmup=9999999"],
        &["train.warmup", "below train.steps"],
    );
    bad_input(
        d,
        &["train", "--set", "optim.lr=0"],
        &["optim.lr = 0", "(0, 10]"],
    );
    bad_input(
        d,
        &["train", "--set", "optim.beta2=1"],
        &["optim.beta2 = 1"],
    );
    bad_input(
        d,
        &["train", "--set", "train.checkpoints=log:0"],
        &["train.checkpoints"],
    );
    bad_input(
        d,
        &["train", "--set", "train.name=../x"],
        &["train.name = '../x'"],
    );
    bad_input(
        d,
        &["train", "--set", "model.act=tanh"],
        &["model.act", "'relu' or 'gelu'"],
    );
    bad_input(
        d,
        &["train", "--set", "modle.layers=2"],
        &["did you mean model.layers"],
    );
    bad_input(
        d,
        &["train", "--resume", "nowhere"],
        &["not a run directory"],
    );
    bad_input(d, &["eval", "nowhere"], &["neither a run directory"]);
    let o = run(d, &train_args("r", "train.steps=30", &[]));
    assert!(o.status.success());
    bad_input(
        d,
        &train_args("r", "train.steps=30", &[]),
        &["already holds a run", "--resume"],
    );
    bad_input(
        d,
        &["eval", "r", "--checkpoint", "later"],
        &["--checkpoint", "'later'"],
    );
    bad_input(
        d,
        &["eval", "r", "--checkpoint", "2"],
        &["step 2 was not kept", "20, 22, 26, 29, 30 and best_ood"],
    );
    let o = run(d, &train_args("r", "train.steps=30", &["--overwrite"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
