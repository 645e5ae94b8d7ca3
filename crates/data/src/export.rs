//! Writing a dataset to disk as `.npy` files for use outside modicl.

use std::path::{Path, PathBuf};

use modicl_core::fs::write_atomic;

use crate::npy::encode_i64;
use crate::{Batch, DataError, Dataset, EvalSet, Vectors};

fn vectors_npy(v: &Vectors) -> Vec<u8> {
    encode_i64(&[v.len(), v.dim], v.data.iter().map(|&x| x as i64))
}

fn batch_npy(b: &Batch) -> (Vec<u8>, Vec<u8>) {
    (
        encode_i64(&[b.rows, b.seq_len], b.tokens.iter().map(|&x| x as i64)),
        encode_i64(&[b.rows], b.task.iter().map(|&x| x as i64)),
    )
}

/// What [`export`] writes.
pub struct ExportOptions<'a> {
    /// Training steps 0..steps to write batches for.
    pub steps: u64,
    /// Also write the four evaluation sets with this many sequences per task.
    pub eval_seqs_per_task: Option<usize>,
    /// The resolved configuration (TOML), saved beside the data so it can be regenerated.
    pub config_toml: &'a str,
    /// Called after each training step's batch is written, with the number written so far.
    pub on_step: Option<&'a dyn Fn(u64)>,
}

/// Writes `id_tasks.npy`, `ood_tasks.npy`, `train_inputs.npy`, `test_inputs.npy`,
/// `batch_<step>_tokens.npy` and `batch_<step>_task.npy` for each step, optionally
/// `eval_<set>_tokens.npy` / `eval_<set>_task.npy`, and `config.toml`. Returns the paths written.
pub fn export(
    ds: &Dataset,
    dir: &Path,
    opts: &ExportOptions<'_>,
) -> Result<Vec<PathBuf>, DataError> {
    let err = |p: &Path, e: std::io::Error| DataError::Write {
        path: p.display().to_string(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
    let mut written = Vec::new();
    let mut put = |name: String, bytes: &[u8]| -> Result<(), DataError> {
        let path = dir.join(name);
        write_atomic(&path, bytes).map_err(|e| err(&path, e))?;
        written.push(path);
        Ok(())
    };
    put("config.toml".into(), opts.config_toml.as_bytes())?;
    put("id_tasks.npy".into(), &vectors_npy(&ds.tasks.id))?;
    put("ood_tasks.npy".into(), &vectors_npy(&ds.tasks.ood))?;
    put("train_inputs.npy".into(), &vectors_npy(&ds.inputs.train))?;
    put("test_inputs.npy".into(), &vectors_npy(&ds.inputs.test))?;
    let mut b = Batch::default();
    for step in 0..opts.steps {
        ds.fill_train_batch(step, &mut b);
        let (tokens, task) = batch_npy(&b);
        put(format!("batch_{step}_tokens.npy"), &tokens)?;
        put(format!("batch_{step}_task.npy"), &task)?;
        if let Some(f) = opts.on_step {
            f(step + 1);
        }
    }
    if let Some(per_task) = opts.eval_seqs_per_task {
        for set in EvalSet::ALL {
            let (tokens, task) = batch_npy(&ds.eval_set(set, per_task));
            put(format!("eval_{}_tokens.npy", set.name()), &tokens)?;
            put(format!("eval_{}_task.npy", set.name()), &task)?;
        }
    }
    Ok(written)
}
