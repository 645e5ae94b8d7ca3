//! The probes on a model trained in the test (p = 7, 500 steps): shapes, determinism across
//! chunk sizes and thread counts, and agreement with a plain forward pass over the same
//! sequences.

use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

use modicl_config::Config;
use modicl_data::{label, Dataset, EvalSet, Space};
use modicl_engine::{Model, Workspace};
use modicl_probes::kshot::{self, KshotSpec};
use modicl_probes::noise::{self, Source};
use modicl_probes::repr::{self, ProbeBatch, TokenPair};
use modicl_probes::Scorer;
use modicl_trainer::{rundir, Observer, RunDir, Trainer};

struct Quiet;
impl Observer for Quiet {}

/// A p = 7 model trained for 500 steps (it has begun to memorize its 8 tasks), and its dataset.
fn trained() -> &'static (Model, Dataset) {
    static CELL: OnceLock<(Model, Dataset)> = OnceLock::new();
    CELL.get_or_init(|| {
        let mut c = Config::resolve(None, None, &[]).unwrap();
        for o in [
            "task.p=7",
            "task.n_base=2",
            "task.batch=32",
            "task.examples=8",
            "model.d_model=32",
            "model.heads=2",
            "model.layers=2",
            "optim.lr=1e-2",
            "train.steps=500",
            "train.warmup=20",
            "train.eval_every=500",
            "train.checkpoints=500",
            "eval.seqs_per_task=2",
        ] {
            c.apply_override(o).unwrap();
        }
        c.check().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path().join("r"));
        let mut t = Trainer::create(c.clone(), run.clone(), false).unwrap();
        t.run(&mut Quiet, &AtomicBool::new(false)).unwrap();
        let model =
            rundir::read_model(&run.step_dir(500), &modicl_trainer::model_config(&c)).unwrap();
        (model, Dataset::build(&c.task).unwrap())
    })
}

/// The tasks and inputs of evaluation set `e`, sequences of 8 examples.
fn source(ds: &Dataset, e: EvalSet) -> Source<'_> {
    let (tasks, inputs) = ds.eval_parts(e);
    Source {
        p: 7,
        tasks,
        inputs,
        examples: 8,
    }
}

fn spec(ds: &Dataset, task: &[u32]) -> KshotSpec {
    KshotSpec {
        p: ds.space.p,
        task: task.to_vec(),
        prefix: kshot::draw_prefix(ds.space.p, 2, 7, 1),
        shots: vec![0, 1, 2, 4, 7],
    }
}

#[test]
fn kshot_grid_agrees_with_a_plain_forward_pass() {
    let (model, ds) = trained();
    let task = ds.tasks.id.get(0).to_vec();
    let sp = spec(ds, &task);
    let g = kshot::run(&mut Scorer::new(model, 13), &sp).unwrap();
    let q = 49;
    assert_eq!(g.queries.len(), q);
    assert_eq!(g.correct.len(), sp.shots.len() * q);
    assert_eq!(g.pred.len(), g.correct.len());
    assert_eq!(g.summary.len(), sp.shots.len());
    // The same sequences, built here, in one workspace: the same correctness per query.
    for (s, &k) in sp.shots.iter().enumerate() {
        let mut tokens = Vec::new();
        let space = Space::new(7, 2).unwrap();
        let mut x = [0u32; 2];
        for id in 0..space.size {
            for i in 0..k {
                let e = sp.prefix.get(i);
                tokens.extend_from_slice(e);
                tokens.push(label(&task, e, 7));
            }
            space.decode(id, &mut x);
            tokens.extend_from_slice(&x);
            tokens.push(label(&task, &x, 7));
        }
        let seq = 3 * (k + 1);
        let mut ws = Workspace::new(&model.cfg, q, seq - 1);
        let loss = model
            .forward(&mut ws, &tokens, seq, &[3 * k + 1], None)
            .unwrap();
        assert_eq!(ws.target_correct, g.at(&g.correct, s), "k = {k}");
        let acc = loss.correct as f64 / q as f64;
        assert!((g.summary[s].model_correct - acc).abs() < 1e-12);
        // A correct query's prediction is its label.
        for (i, xq) in g.queries.iter().enumerate() {
            assert_eq!(
                g.at(&g.correct, s)[i],
                g.at(&g.pred, s)[i] == label(&task, xq, 7)
            );
        }
        // RM's set lies inside MR's, and RM's answers are right.
        for i in 0..q {
            assert!(!g.at(&g.rm, s)[i] || g.at(&g.mr, s)[i]);
        }
        let sm = &g.summary[s];
        assert!(
            (sm.model_beyond_rm - (sm.model_correct - (sm.rm_explained - sm.rm_not_model))).abs()
                < 1e-12
        );
    }
    // The model learned something: after 7 examples of an i.d. task it beats chance (1/7).
    assert!(
        g.summary.last().unwrap().model_correct > 0.2,
        "{:?}",
        g.summary
    );
}

#[test]
fn probes_do_not_depend_on_chunks_or_threads() {
    let (model, ds) = trained();
    let task = ds.tasks.ood.get(0).to_vec();
    let sp = spec(ds, &task);
    let src = source(ds, EvalSet::OodTrain);
    let go = |chunk: usize, threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let mut sc = Scorer::new(model, chunk);
                let g = kshot::run(&mut sc, &sp).unwrap();
                let r = noise::random_location(&mut sc, &src, 3, 2, 5).unwrap();
                let s = noise::single_location(&mut sc, &src, 6, 5).unwrap();
                (
                    g,
                    serde_json::to_string(&r).unwrap(),
                    serde_json::to_string(&s).unwrap(),
                )
            })
    };
    let a = go(7, 1);
    let b = go(64, 2);
    assert_eq!(a.0, b.0);
    assert_eq!(a.1, b.1);
    assert_eq!(a.2, b.2);
}

#[test]
fn corruption_shapes_and_clean_cells() {
    let (model, ds) = trained();
    let src = source(ds, EvalSet::IdTrain);
    let mut sc = Scorer::new(model, 32);
    let r = noise::random_location(&mut sc, &src, 8, 8, 0).unwrap();
    assert_eq!(r.samples, 64);
    assert_eq!(r.acc.len(), 8);
    for (k, row) in r.acc.iter().enumerate() {
        assert_eq!(row.len(), k + 1);
        assert!(row.iter().all(|v| (0.0..=1.0).contains(v)));
    }
    let s = noise::single_location(&mut sc, &src, 10, 0).unwrap();
    assert_eq!(s.baseline.len(), 8);
    for i in 0..8 {
        for j in 0..8 {
            assert_eq!(s.acc[i][j].is_nan(), j >= i);
        }
    }
    // Pooled counts: every (sequence, shot >= 1 with a nonzero query, earlier example) once.
    let d = &s.dependence;
    let cases = [
        &d.only_source_same_input,
        &d.only_source_scaled,
        &d.one_of_several_sources,
        &d.not_a_source,
    ];
    assert!(cases.iter().map(|c| c.count).sum::<u64>() > 0);
    for c in cases.iter().filter(|c| c.count > 0) {
        assert!((0.0..=1.0).contains(&c.clean_acc) && (0.0..=1.0).contains(&c.corrupted_acc));
    }
    // A corrupted label can only lower an i.d. model's accuracy on average: all labels wrong
    // is far below none wrong at the last shot.
    assert!(r.acc[7][7] < r.acc[7][0], "{:?}", r.acc[7]);
}

#[test]
fn attention_rows_are_distributions_and_causal() {
    let (model, ds) = trained();
    let b = ProbeBatch::new(7, ds.tasks.id.get(0), 8, 3, 0).unwrap();
    let a = repr::attention(model, &b, 10).unwrap();
    assert_eq!((a.layers, a.heads, a.t), (2, 2, 23));
    for m in [&a.first, &a.mean] {
        for (i, row) in m.chunks_exact(a.t).enumerate() {
            let q = i % a.t;
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-5, "row {i}");
            assert!(
                row[q + 1..].iter().all(|&v| v == 0.0),
                "row {i} looks ahead"
            );
        }
    }
}

#[test]
fn head_writes_sum_to_the_attention_output() {
    let (model, ds) = trained();
    let b = ProbeBatch::new(7, ds.tasks.ood.get(0), 8, 2, 4).unwrap();
    let f = repr::features(model, &b, 16).unwrap();
    for l in 0..f.layers {
        for r in [0, 17, 48] {
            for tok in 0..3 {
                let s = (r * 3 + tok) * f.d;
                let want = &f.attn_out[l][s..s + f.d];
                for (j, &w) in want.iter().enumerate() {
                    let got: f32 = (0..f.heads).map(|h| f.head(l, h, r, tok)[j]).sum();
                    assert!(
                        (got - w).abs() <= 1e-5 * (1.0 + w.abs()),
                        "layer {l} row {r} tok {tok} dim {j}: {got} vs {w}"
                    );
                }
            }
        }
    }
    // The PCA of a head and the cosines have their shapes and invariants.
    let (pca, s) = repr::head_pca(&f, 1, 0, TokenPair::Xy, 7, 4);
    assert_eq!(pca.scores.len(), 49 * 4);
    assert!(pca.explained.windows(2).all(|w| w[0] >= w[1] - 1e-12));
    assert!((0.0..=1.0).contains(&s.score));
    let c = repr::cosine(&f.blocks_out[1], 7, f.d, false);
    assert_eq!((c.x.len(), c.y.len(), c.z.len()), (49, 49 * 49, 49 * 49));
    for i in 0..49 {
        assert!((c.y[i * 49 + i] - 1.0).abs() < 1e-9);
        assert!((c.z[i * 49 + (48 - i)] - c.z[(48 - i) * 49 + i]).abs() < 1e-12);
    }
    // Chunking does not change the features.
    assert_eq!(repr::features(model, &b, 49).unwrap(), f);
}
