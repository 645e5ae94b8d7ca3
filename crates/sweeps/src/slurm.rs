//! SLURM job arrays: a script whose array element i runs exactly run i of the manifest
//! (`modicl sweep run-one DIR --index $SLURM_ARRAY_TASK_ID`), listing only the runs that are
//! not DONE, so re-submitting after failures or requeues runs only what is left (and resumes
//! interrupted runs from their checkpoints).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::plan::{Manifest, SweepDir};
use crate::SweepError;

/// Resources and placement of the array's elements.
#[derive(Clone, Debug, Default)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    /// Wall-time limit per run, as sbatch takes it (e.g. 6:00:00).
    pub time: Option<String>,
    /// GPUs per run (e.g. 1 or a100:1).
    pub gpus: Option<String>,
    /// CPUs per run; also the run's thread count.
    pub cpus: u32,
    /// Memory per run (e.g. 16G).
    pub mem: Option<String>,
    /// At most this many elements at once (`%K`).
    pub max_parallel: Option<usize>,
    /// Further `#SBATCH` options, verbatim (e.g. --account=abc).
    pub extra: Vec<String>,
    /// The modicl binary the elements run.
    pub modicl: PathBuf,
}

/// One submission, recorded in `slurm/submissions.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Submission {
    pub job_id: String,
    pub indices: Vec<usize>,
    pub script: String,
}

pub fn slurm_dir(sd: &SweepDir) -> PathBuf {
    sd.root.join("slurm")
}

/// `0-3,5,7-9`: indices compressed into ranges.
pub fn array_spec(indices: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        let mut end = start;
        while i + 1 < indices.len() && indices[i + 1] == end + 1 {
            i += 1;
            end = indices[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The job-array script for `indices` (absolute paths, so it runs from anywhere).
pub fn script(sd: &SweepDir, opts: &SlurmOptions, indices: &[usize]) -> Result<String, SweepError> {
    let root = std::path::absolute(&sd.root).map_err(|e| SweepError::io(&sd.root, e))?;
    // #SBATCH lines are not shell-quoted, and sbatch expands % in --output.
    if root
        .to_string_lossy()
        .contains(|c: char| c.is_whitespace() || c == '%')
    {
        return Err(SweepError::Slurm(format!(
            "the sweep path '{}' contains whitespace or '%', which #SBATCH --output cannot hold",
            root.display()
        )));
    }
    let logs = root.join("slurm").join("logs");
    let name = root
        .file_name()
        .map_or("sweep".into(), |n| n.to_string_lossy().into_owned());
    let mut array = array_spec(indices);
    if let Some(k) = opts.max_parallel {
        array.push_str(&format!("%{k}"));
    }
    let cpus = opts.cpus.max(1);
    let mut s = String::from("#!/usr/bin/env bash\n");
    s += &format!(
        "#SBATCH --job-name=modicl-{}\n",
        name.replace(char::is_whitespace, "_")
    );
    s += &format!("#SBATCH --array={array}\n");
    s += &format!("#SBATCH --output={}/%A_%a.out\n", logs.display());
    s += &format!("#SBATCH --cpus-per-task={cpus}\n");
    for (flag, v) in [
        ("partition", &opts.partition),
        ("time", &opts.time),
        ("gpus", &opts.gpus),
        ("mem", &opts.mem),
    ] {
        if let Some(v) = v {
            s += &format!("#SBATCH --{flag}={v}\n");
        }
    }
    for e in &opts.extra {
        s += &format!("#SBATCH {e}\n");
    }
    s += "set -euo pipefail\n";
    s += "# Element i trains run i of sweep.json; done runs exit at once, interrupted ones resume.\n";
    // With GPUs, each element trains on its GPU.
    let device = if opts.gpus.is_some() {
        " --device cuda"
    } else {
        ""
    };
    s += &format!(
        "exec {} sweep run-one {} --index \"$SLURM_ARRAY_TASK_ID\" --threads \"${{SLURM_CPUS_PER_TASK:-{cpus}}}\"{device}\n",
        quote(&opts.modicl.display().to_string()),
        quote(&root.display().to_string())
    );
    Ok(s)
}

/// Writes the script for the runs not DONE; returns its path and the indices (none: nothing
/// to submit).
pub fn write_script(
    sd: &SweepDir,
    m: &Manifest,
    opts: &SlurmOptions,
) -> Result<(PathBuf, Vec<usize>), SweepError> {
    let indices = crate::exec::pending(sd, m);
    let dir = slurm_dir(sd);
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| SweepError::io(&logs, e))?;
    let path = dir.join("array.sh");
    if !indices.is_empty() {
        let text = script(sd, opts, &indices)?;
        modicl_trainer::rundir::write_atomic(&path, text.as_bytes())?;
    }
    Ok((path, indices))
}

/// Submits `script` with sbatch and records the job id.
pub fn submit(sd: &SweepDir, script: &Path, indices: &[usize]) -> Result<String, SweepError> {
    let out = Command::new("sbatch")
        .arg("--parsable")
        .arg(script)
        .output()
        .map_err(|e| SweepError::Slurm(format!("cannot run sbatch: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(SweepError::Slurm(format!(
            "sbatch failed ({}): {}",
            out.status,
            err.trim().replace('\n', " ")
        )));
    }
    // --parsable prints JOBID or JOBID;CLUSTER, last (site wrappers may print before it).
    let text = String::from_utf8_lossy(&out.stdout);
    let job_id = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| l.trim().split(';').next())
        .unwrap_or("")
        .to_string();
    if job_id.is_empty() || !job_id.chars().all(|c| c.is_ascii_digit()) {
        return Err(SweepError::Slurm(format!(
            "sbatch succeeded but printed no job id ({}); check squeue before submitting again",
            text.trim().replace('\n', " ")
        )));
    }
    let path = slurm_dir(sd).join("submissions.json");
    let mut subs: Vec<Submission> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    subs.push(Submission {
        job_id: job_id.clone(),
        indices: indices.to_vec(),
        script: script.display().to_string(),
    });
    let text = serde_json::to_string_pretty(&subs).expect("serialises") + "\n";
    modicl_trainer::rundir::write_atomic(&path, text.as_bytes())?;
    Ok(job_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_specs_compress_ranges() {
        assert_eq!(array_spec(&[0, 1, 2, 3]), "0-3");
        assert_eq!(array_spec(&[1, 3, 4, 5, 9]), "1,3-5,9");
        assert_eq!(array_spec(&[7]), "7");
    }

    #[test]
    fn the_script_runs_exactly_the_element_s_run() {
        let opts = SlurmOptions {
            partition: Some("gpu".into()),
            time: Some("6:00:00".into()),
            gpus: Some("a100:1".into()),
            cpus: 8,
            mem: Some("64G".into()),
            max_parallel: Some(4),
            extra: vec!["--account=x".into()],
            modicl: PathBuf::from("/opt/it's/modicl"),
        };
        let s = script(&SweepDir::new("/tmp/sw"), &opts, &[0, 1, 2, 5]).unwrap();
        for line in [
            "#SBATCH --array=0-2,5%4",
            "#SBATCH --cpus-per-task=8",
            "#SBATCH --partition=gpu",
            "#SBATCH --time=6:00:00",
            "#SBATCH --gpus=a100:1",
            "#SBATCH --mem=64G",
            "#SBATCH --account=x",
            "#SBATCH --output=/tmp/sw/slurm/logs/%A_%a.out",
            "exec '/opt/it'\\''s/modicl' sweep run-one '/tmp/sw' --index \"$SLURM_ARRAY_TASK_ID\"",
            "--device cuda\n",
        ] {
            assert!(s.contains(line), "{line} not in\n{s}");
        }
        // Without GPUs the runs stay on the CPU.
        let cpu = SlurmOptions { gpus: None, ..opts };
        let s = script(&SweepDir::new("/tmp/sw"), &cpu, &[0]).unwrap();
        assert!(!s.contains("--device"), "{s}");
    }
}
