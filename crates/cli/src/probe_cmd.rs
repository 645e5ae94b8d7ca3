//! `modicl probe`: the behavioural probes of a trained model (crate modicl-probes), written to
//! `<run>/probes/<checkpoint>/` with an index of what was written.

use std::path::PathBuf;

use modicl_config::Config;
use modicl_data::npy::{encode_f64, encode_i64};
use modicl_data::{Dataset, EvalSet, Vectors};
use modicl_engine::{Model, Shards};
use modicl_probes::figures::{self, ShotsPanel};
use modicl_probes::kshot::{self, KshotSpec};
use modicl_probes::noise::{self, Source};
use modicl_probes::oracle::{self, Curve};
use modicl_probes::{ProbeError, Scorer};
use modicl_trainer::{rundir, Evaluator};
use serde_json::{json, Value};

use crate::args::{
    CosineOpts, KshotOpts, NoiseOpts, PairArg, PcaOpts, PerArg, ProbeCommand, ProbeTarget,
    ReprTarget, ShotsOpts,
};
use crate::eval_cmd::open;
use crate::probe_repr;
use crate::train_cmd::pool;

/// Sequences per forward pass of the probes.
pub(crate) const CHUNK: usize = 128;

/// A loaded checkpoint and where its probes go.
pub(crate) struct Loaded {
    pub run_root: PathBuf,
    pub ck: PathBuf,
    pub ck_name: String,
    pub cfg: Config,
    pub step: u64,
    pub model: Model,
    pub ds: Dataset,
    pub out: PathBuf,
}

fn load(t: &ProbeTarget) -> anyhow::Result<Loaded> {
    let o = open(&t.path, &t.checkpoint)?;
    let out = t
        .out
        .clone()
        .unwrap_or_else(|| o.run.root.join("probes").join(&o.ck_name));
    Ok(Loaded {
        run_root: o.run.root.clone(),
        ck: o.ck,
        ck_name: o.ck_name,
        cfg: o.cfg,
        step: o.state.step,
        model: o.model,
        ds: o.ds,
        out,
    })
}

/// The checkpoint, and the probe batch of the task and options in `on`.
fn repr_target(on: &ReprTarget) -> anyhow::Result<(Loaded, modicl_probes::repr::ProbeBatch)> {
    let l = load(&on.target)?;
    let task = parse_vector(&l, "--task", &on.task)?;
    let b = probe_repr::batch(&l, &task, &on.batch)?;
    Ok((l, b))
}

/// What one probe wrote: its key in index.json, the files, and its numbers.
pub(crate) struct Written {
    pub key: String,
    pub files: Vec<PathBuf>,
    pub summary: Value,
    pub table: String,
}

pub fn probe(c: &ProbeCommand) -> anyhow::Result<()> {
    let (target, results) = match c {
        ProbeCommand::Shots(a) => {
            let l = load(&a.target)?;
            let w = pool(a.target.threads)?.install(|| shots(&l, &a.opts))?;
            (&a.target, finish(&l, vec![w])?)
        }
        ProbeCommand::Kshot(a) => {
            let l = load(&a.target)?;
            let task = parse_vector(&l, "--task", &a.task)?;
            let w = pool(a.target.threads)?.install(|| kshot(&l, &task, &a.opts))?;
            (&a.target, finish(&l, vec![w])?)
        }
        ProbeCommand::Noise(a) => {
            let l = load(&a.target)?;
            let w = pool(a.target.threads)?.install(|| noise(&l, &a.opts))?;
            (&a.target, finish(&l, vec![w])?)
        }
        ProbeCommand::Attention(a) => {
            let (l, b) = repr_target(&a.on)?;
            let w =
                pool(a.on.target.threads)?.install(|| probe_repr::attention(&l, &b, a.tokens))?;
            (&a.on.target, finish(&l, vec![w])?)
        }
        ProbeCommand::Pca(a) => {
            let (l, b) = repr_target(&a.on)?;
            let w = pool(a.on.target.threads)?.install(|| probe_repr::pca(&l, &b, &a.pca, None))?;
            (&a.on.target, finish(&l, vec![w])?)
        }
        ProbeCommand::Embed(a) => {
            let l = load(&a.target)?;
            let w = probe_repr::embed(&l)?;
            (&a.target, finish(&l, vec![w])?)
        }
        ProbeCommand::Cosine(a) => {
            let (l, b) = repr_target(&a.on)?;
            let w = pool(a.on.target.threads)?
                .install(|| probe_repr::cosine(&l, &b, &a.cosine, None))?;
            (&a.on.target, finish(&l, vec![w])?)
        }
        ProbeCommand::All(a) => {
            let l = load(&a.target)?;
            let tasks: Vec<Vec<u32>> = if a.task.is_empty() {
                [&l.ds.tasks.id, &l.ds.tasks.ood]
                    .iter()
                    .filter(|v| !v.is_empty())
                    .map(|v| v.get(0).to_vec())
                    .collect()
            } else {
                a.task
                    .iter()
                    .map(|t| parse_vector(&l, "--task", t))
                    .collect::<Result<_, _>>()?
            };
            let written = pool(a.target.threads)?.install(|| -> anyhow::Result<_> {
                let mut w = vec![shots(&l, &a.shots)?];
                for t in &tasks {
                    w.push(kshot(&l, t, &a.kshot)?);
                }
                w.push(noise(&l, &a.noise)?);
                // The representation probes, on the first task (n_var = 2 only).
                if let Some(task) = tasks.first().filter(|t| t.len() == 2) {
                    let b = probe_repr::batch(&l, task, &a.batch)?;
                    w.push(probe_repr::attention(&l, &b, 48)?);
                    let f = modicl_probes::repr::features(&l.model, &b, CHUNK)?;
                    let pca = PcaOpts {
                        layer: None,
                        head: None,
                        pair: PairArg::Xy,
                        all_heads: true,
                    };
                    w.push(probe_repr::pca(&l, &b, &pca, Some(&f))?);
                    w.push(probe_repr::cosine(
                        &l,
                        &b,
                        &CosineOpts { per: PerArg::Both },
                        Some(&f),
                    )?);
                }
                w.push(probe_repr::embed(&l)?);
                Ok(w)
            })?;
            (&a.target, finish(&l, written)?)
        }
    };
    if target.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    Ok(())
}

/// Merges the probes' entries into `<out>/index.json`, prints their tables (unless --json) and
/// returns the entries.
fn finish(l: &Loaded, written: Vec<Written>) -> anyhow::Result<Value> {
    let index_path = l.out.join("index.json");
    let mut index = match std::fs::read_to_string(&index_path) {
        Ok(text) => serde_json::from_str::<Value>(&text).unwrap_or_else(|_| json!({})),
        Err(_) => json!({}),
    };
    if index.get("step").and_then(Value::as_u64) != Some(l.step) {
        // Another checkpoint's probes (or none): start afresh.
        index = json!({});
    }
    index["run"] = json!(l.run_root.display().to_string());
    index["checkpoint"] = json!(l.ck.display().to_string());
    index["step"] = json!(l.step);
    if !index["probes"].is_object() {
        index["probes"] = json!({});
    }
    let mut out = json!({});
    for w in &written {
        let files: Vec<String> = w
            .files
            .iter()
            .map(|f| f.strip_prefix(&l.out).unwrap_or(f).display().to_string())
            .collect();
        index["probes"][&w.key] = json!({ "files": files, "summary": w.summary });
        out[&w.key] = w.summary.clone();
    }
    let text = serde_json::to_string_pretty(&index)? + "\n";
    rundir::write_atomic(&index_path, text.as_bytes())?;
    for w in &written {
        eprintln!("{}", w.table);
        for f in &w.files {
            eprintln!("wrote {}", f.display());
        }
    }
    eprintln!("wrote {}", index_path.display());
    Ok(out)
}

fn pct(v: f64) -> String {
    format!("{:5.1}", 100.0 * v)
}

/// The shots the tables print: a few early ones, then powers of two, and the last.
fn shown_shots(k: usize) -> Vec<usize> {
    let mut v: Vec<usize> = [0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 31]
        .into_iter()
        .filter(|&s| s < k)
        .collect();
    if v.last() != Some(&(k - 1)) {
        v.push(k - 1);
    }
    v
}

fn shots(l: &Loaded, o: &ShotsOpts) -> anyhow::Result<Written> {
    let sizing = l.cfg.eval.overridden(o.seqs_per_task);
    let (ds, p) = (&l.ds, l.cfg.task.p);
    let k = ds.seq.examples;
    let mut ev = Evaluator::for_config(ds, &sizing);
    let mut ws = Shards::new(&l.model.cfg, CHUNK, ds.seq.input_len());
    let sets = ev.run(&l.model, &mut ws)?;
    let curves = |inputs: &Vectors| {
        (
            oracle::rm_curve(inputs, p, k - 1),
            oracle::mr_curve(inputs, p, k - 1),
        )
    };
    let train = curves(&ds.inputs.train);
    let test = curves(&ds.inputs.test);
    let oracles_of = |e: EvalSet| -> &(Curve, Curve) {
        match e {
            EvalSet::IdTrain | EvalSet::OodTrain => &train,
            EvalSet::IdTest | EvalSet::OodTest => &test,
        }
    };
    let mut csv = String::from(
        "set,shot,model_acc,model_correct,model_count,rm_acc,rm_decided,mr_acc,mr_decided,mr_se\n",
    );
    let mut model_acc = Vec::new();
    for (e, m) in EvalSet::ALL.iter().zip(&sets) {
        let (rm, mr) = oracles_of(*e);
        let accs: Vec<f64> = (0..k).map(|i| m.acc_shot(i)).collect();
        for (i, acc) in accs.iter().enumerate() {
            csv += &format!(
                "{},{i},{acc},{},{},{},{},{},{},{}\n",
                e.name(),
                m.shot_correct[i],
                m.shot_count[i],
                rm.acc[i],
                rm.decided[i],
                mr.acc[i],
                mr.decided[i],
                mr.se[i]
            );
        }
        model_acc.push(accs);
    }
    let path = l.out.join("shots.csv");
    rundir::write_atomic(&path, csv.as_bytes())?;
    let panels: Vec<ShotsPanel<'_>> = EvalSet::ALL
        .iter()
        .zip(&model_acc)
        .map(|(e, acc)| {
            let (rm, mr) = oracles_of(*e);
            ShotsPanel {
                set: e.name(),
                model: acc,
                rm,
                mr,
            }
        })
        .collect();
    let title = format!(
        "{} at step {}: per-shot accuracy and the two algorithms",
        l.cfg.train.name, l.step
    );
    let mut files = vec![path];
    files.extend(figures::shots(&l.out.join("shots"), &title, &panels, p)?);
    let mut table = format!(
        "per-shot accuracy (%) of {} at step {} ({}), {}; RM/MR: the oracles with guessing, on \
         the set's inputs\n{:<16}",
        l.cfg.train.name,
        l.step,
        l.ck_name,
        sizing.describe(),
        "shot"
    );
    let shown = shown_shots(k);
    for &i in &shown {
        table += &format!(" {i:>5}");
    }
    for (e, acc) in EvalSet::ALL.iter().zip(&model_acc) {
        let (rm, mr) = oracles_of(*e);
        for (label, v) in [(e.name(), acc), ("  RM", &rm.acc), ("  MR", &mr.acc)] {
            table += &format!("\n{label:<16}");
            for &i in &shown {
                table += &format!(" {}", pct(v[i]));
            }
        }
    }
    let summary = json!({
        "seqs_per_task": sizing.seqs_per_task,
        "target_se": sizing.target_se,
        "sets": EvalSet::ALL.iter().zip(&model_acc).map(|(e, acc)| {
            let (rm, mr) = oracles_of(*e);
            json!({"set": e.name(), "model_last": acc[k - 1], "rm_last": rm.acc[k - 1], "mr_last": mr.acc[k - 1]})
        }).collect::<Vec<_>>(),
        "oracle_method": { "train_inputs": {"rm": train.0.method, "mr": train.1.method},
                           "test_inputs": {"rm": test.0.method, "mr": test.1.method} },
    });
    Ok(Written {
        key: "shots".into(),
        files,
        summary,
        table,
    })
}

/// A vector of n_var numbers in 0..p, written "a,b".
fn parse_vector(l: &Loaded, field: &str, text: &str) -> Result<Vec<u32>, ProbeError> {
    let (p, m) = (l.cfg.task.p, l.cfg.task.n_var as usize);
    let want = || format!("{m} comma-separated numbers in 0..{p} (task.p = {p}, task.n_var = {m})");
    let v: Vec<u32> = text
        .split(',')
        .map(|s| s.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|_| ProbeError::invalid(field, text, want()))?;
    if v.len() != m || v.iter().any(|&x| x >= p) {
        return Err(ProbeError::invalid(field, text, want()));
    }
    Ok(v)
}

/// Which of the run's task sets holds `task`.
fn task_set(ds: &Dataset, task: &[u32]) -> &'static str {
    if ds.tasks.id.iter().any(|t| t == task) {
        "id"
    } else if ds.tasks.ood.iter().any(|t| t == task) {
        "ood"
    } else {
        "neither"
    }
}

/// The shot counts of a k-shot grid: given, or 1, 2, 13 and 31 scaled to the run's k.
fn kshot_shots(
    l: &Loaded,
    o: &KshotOpts,
    prefix_len: Option<usize>,
) -> Result<Vec<usize>, ProbeError> {
    let kmax = l.ds.seq.examples - 1;
    let shots: Vec<usize> = match &o.shots {
        Some(text) => text
            .split(',')
            .map(|s| {
                let v: usize = s.trim().parse().map_err(|_| {
                    ProbeError::invalid("--shots", text, "comma-separated shot counts, e.g. 1,2,13,31")
                })?;
                if v > kmax {
                    return Err(ProbeError::invalid(
                        "--shots",
                        v,
                        format!(
                            "shot counts in 0..={kmax} (the run's task.examples = {} holds the query too)",
                            kmax + 1
                        ),
                    ));
                }
                Ok(v)
            })
            .collect::<Result<_, _>>()?,
        None => {
            let mut v: Vec<usize> = [1, 2, (13 * kmax + 15) / 31, kmax]
                .into_iter()
                .filter(|&s| s <= prefix_len.unwrap_or(kmax) && s <= kmax)
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        }
    };
    if let (Some(n), Some(&max)) = (prefix_len, shots.iter().max()) {
        if max > n {
            return Err(ProbeError::invalid(
                "--shots",
                max,
                format!("at most the {n} examples given with --examples"),
            ));
        }
    }
    if shots.is_empty() {
        return Err(ProbeError::invalid(
            "--shots",
            "(none)",
            "at least one shot count",
        ));
    }
    Ok(shots)
}

fn kshot(l: &Loaded, task: &[u32], o: &KshotOpts) -> anyhow::Result<Written> {
    let (p, m) = (l.cfg.task.p, l.cfg.task.n_var as usize);
    let given = o
        .examples
        .as_ref()
        .map(|text| -> Result<Vectors, ProbeError> {
            let mut data = Vec::new();
            for part in text.split(';').filter(|s| !s.trim().is_empty()) {
                data.extend(parse_vector(l, "--examples", part)?);
            }
            Ok(Vectors { dim: m, data })
        })
        .transpose()?;
    let shots = kshot_shots(l, o, given.as_ref().map(Vectors::len))?;
    let max = *shots.iter().max().expect("at least one shot");
    let prefix = given.unwrap_or_else(|| kshot::draw_prefix(p, m as u32, max, o.examples_seed));
    let spec = KshotSpec {
        p,
        task: task.to_vec(),
        prefix,
        shots: shots.clone(),
    };
    let mut scorer = Scorer::new(&l.model, CHUNK);
    let g = kshot::run(&mut scorer, &spec)?;
    let name = format!(
        "task_{}",
        task.iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join("_")
    );
    let dir = l.out.join("kshot").join(&name);
    let mut shape = vec![shots.len()];
    shape.extend(std::iter::repeat_n(p as usize, m));
    let mut files = Vec::new();
    let mut npy = |file: &str, bytes: Vec<u8>| -> anyhow::Result<()> {
        let path = dir.join(file);
        rundir::write_atomic(&path, &bytes)?;
        files.push(path);
        Ok(())
    };
    let ints = |v: &[bool]| v.iter().map(|&b| b as i64).collect::<Vec<_>>();
    npy(
        "correct.npy",
        encode_i64(&shape, ints(&g.correct).into_iter()),
    )?;
    npy("rm.npy", encode_i64(&shape, ints(&g.rm).into_iter()))?;
    npy("mr.npy", encode_i64(&shape, ints(&g.mr).into_iter()))?;
    npy(
        "pred.npy",
        encode_i64(&shape, g.pred.iter().map(|&v| v as i64)),
    )?;
    npy(
        "loss.npy",
        encode_f64(&shape, g.loss.iter().map(|&v| v as f64)),
    )?;
    let prefix_json: Vec<Value> = (0..max)
        .map(|i| {
            let x = spec.prefix.get(i);
            json!({"x": x, "z": modicl_data::label(task, x, p)})
        })
        .collect();
    let set = task_set(&l.ds, task);
    let summary = json!({
        "task": task,
        "task_set": set,
        "prefix": prefix_json,
        "examples_seed": if o.examples.is_some() { Value::Null } else { json!(o.examples_seed) },
        "shots": g.summary,
        "arrays": "shape [shots, p, p] indexed [shot, x, y]: correct, rm, mr (0/1), pred (argmax over the whole vocabulary), loss (nats)",
    });
    let json_path = dir.join("kshot.json");
    rundir::write_atomic(
        &json_path,
        (serde_json::to_string_pretty(&summary)? + "\n").as_bytes(),
    )?;
    files.push(json_path);
    let task_text = task
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if m == 2 {
        let title = format!(
            "{} step {}: task ({task_text}), {} task; prefix {}",
            l.cfg.train.name,
            l.step,
            match set {
                "id" => "i.d.",
                "ood" => "o.o.d.",
                _ => "unseen",
            },
            if o.examples.is_some() {
                "given".to_string()
            } else {
                format!("seed {}", o.examples_seed)
            }
        );
        files.extend(figures::kshot(&dir.join("kshot"), &title, &g)?);
    }
    let mut table = format!(
        "k-shot grid, task ({task_text}) ({set}), {} queries: % of queries\n{:<6} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>6}",
        g.queries.len(), "shots", "model", "RM", "MR", "model-RM", "RM-model", "model-MR", "loss"
    );
    for s in &g.summary {
        table += &format!(
            "\n{:<6} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>6.3}",
            s.shots,
            pct(s.model_correct),
            pct(s.rm_explained),
            pct(s.mr_explained),
            pct(s.model_beyond_rm),
            pct(s.rm_not_model),
            pct(s.model_beyond_mr),
            s.loss
        );
    }
    Ok(Written {
        key: format!("kshot/{name}"),
        files,
        summary,
        table,
    })
}

fn noise(l: &Loaded, o: &NoiseOpts) -> anyhow::Result<Written> {
    let (ds, p) = (&l.ds, l.cfg.task.p);
    let k = ds.seq.examples;
    let dir = l.out.join("noise");
    let src = |e: EvalSet| {
        let (tasks, inputs) = ds.eval_parts(e);
        Source {
            p,
            tasks,
            inputs,
            examples: k,
        }
    };
    let mut scorer = Scorer::new(&l.model, CHUNK);
    let mut random = Vec::new();
    for e in [EvalSet::IdTrain, EvalSet::OodTrain] {
        if src(e).tasks.is_empty() {
            continue;
        }
        let r = noise::random_location(
            &mut scorer,
            &src(e),
            o.tasks as usize,
            o.trials as usize,
            o.seed,
        )?;
        random.push((e.name(), r));
    }
    let mut single = Vec::new();
    for e in EvalSet::ALL {
        if src(e).tasks.is_empty() {
            continue;
        }
        let s = noise::single_location(&mut scorer, &src(e), o.sequences as usize, o.seed)?;
        single.push((e.name(), s));
    }
    let mut files = Vec::new();
    let refs: Vec<(&str, &noise::RandomLocation)> = random.iter().map(|(n, r)| (*n, r)).collect();
    files.extend(figures::noise_random(
        &dir.join("random"),
        &format!(
            "{} step {}: random-location label corruption (query accuracy and loss)",
            l.cfg.train.name, l.step
        ),
        &refs,
    )?);
    let refs: Vec<(&str, &noise::SingleLocation)> = single.iter().map(|(n, s)| (*n, s)).collect();
    files.extend(figures::noise_single(
        &dir.join("single"),
        &format!(
            "{} step {}: accuracy at shot i with only label j wrong",
            l.cfg.train.name, l.step
        ),
        &refs,
    )?);
    let summary = json!({
        "seed": o.seed,
        "random_location": random.iter().map(|(n, r)| json!({"set": n, "result": r})).collect::<Vec<_>>(),
        "single_location": single.iter().map(|(n, s)| json!({"set": n, "result": s})).collect::<Vec<_>>(),
        "note": "random_location acc/loss are [shot k][wrong labels m] (m <= k); single_location acc is [shot i][corrupted example j] (j < i, NaN as null otherwise)",
    });
    let path = dir.join("noise.json");
    rundir::write_atomic(
        &path,
        (serde_json::to_string_pretty(&summary)? + "\n").as_bytes(),
    )?;
    files.push(path);
    let mut table = format!(
        "label corruption: accuracy (%) at the query\n{:<10} {:>10} {:>10} {:>12} {:>12}",
        "set", "clean", "1 wrong", "half wrong", "all wrong"
    );
    for (n, r) in &random {
        let last = &r.acc[k - 1];
        table += &format!(
            "\n{n:<10} {:>10} {:>10} {:>12} {:>12}",
            pct(last[0]),
            pct(last[1.min(k - 1)]),
            pct(last[(k - 1) / 2]),
            pct(last[k - 1])
        );
    }
    table += &format!(
        "\n(at shot {}; {} tasks x {} trials)\nwhich examples matter (one wrong label j < i, pooled over shots i): accuracy (%) at shot i, clean -> with label j wrong, when example j is\n{:<10} {:<22} {:<22} {:<22} {:<22}",
        k - 1, o.tasks, o.trials, "set", "only source, same x", "only source, scaled", "one of several sources", "not an RM source"
    );
    for (n, s) in &single {
        let d = &s.dependence;
        let cell = |c: &noise::Case| {
            format!(
                "{}->{} n={}",
                pct(c.clean_acc).trim(),
                pct(c.corrupted_acc).trim(),
                c.count
            )
        };
        table += &format!(
            "\n{n:<10} {:<22} {:<22} {:<22} {:<22}",
            cell(&d.only_source_same_input),
            cell(&d.only_source_scaled),
            cell(&d.one_of_several_sources),
            cell(&d.not_a_source)
        );
    }
    Ok(Written {
        key: "noise".into(),
        files,
        summary,
        table,
    })
}
