//! Pre-training (i.d.) and o.o.d. task sets.

use std::collections::HashSet;
use std::path::Path;

use modicl_config::{ConfigError, OodCap, TaskConfig, TaskSource};
use modicl_core::rng::{Domain, Rng};

use crate::vectors::{Space, Vectors};
use crate::DataError;

/// The exact task lists drawn by the official code (p = 29, seeds 1 and 2).
const OFFICIAL_LISTS: &str = include_str!("../assets/official-task-lists.json");

/// The pre-training and o.o.d. task vectors of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskSets {
    /// Pre-training tasks. When generated: the `n_base` base tasks, then their partners three by
    /// three (base i's `(a, y'), (x', b), (x', y')` at `n_base + 3i ..`), then the random tasks;
    /// the order of the official code.
    pub id: Vectors,
    /// O.o.d. tasks: task vectors that are not pre-training tasks, in a seeded random order.
    pub ood: Vectors,
    /// Number of parallelogram groups at the head of `id` (0 for explicit lists).
    pub n_base: usize,
}

impl TaskSets {
    /// Parallelogram group `i`: `[(a, b), (a, y'), (x', b), (x', y')]`.
    pub fn group(&self, i: usize) -> [&[u32]; 4] {
        let n = self.n_base;
        assert!(i < n, "group {i} of {n}");
        [
            self.id.get(i),
            self.id.get(n + 3 * i),
            self.id.get(n + 3 * i + 1),
            self.id.get(n + 3 * i + 2),
        ]
    }
}

/// Membership in Z_p^dim by vector number.
struct Bits(Vec<u64>);

impl Bits {
    fn new(size: u32) -> Bits {
        Bits(vec![0; (size as usize).div_ceil(64)])
    }
    fn contains(&self, i: u32) -> bool {
        self.0[i as usize / 64] >> (i % 64) & 1 == 1
    }
    /// Inserts `i`; false if it was already there.
    fn insert(&mut self, i: u32) -> bool {
        let had = self.contains(i);
        self.0[i as usize / 64] |= 1 << (i % 64);
        !had
    }
}

pub(crate) fn build(cfg: &TaskConfig, space: Space) -> Result<TaskSets, DataError> {
    let (id, ood, n_base) = match &cfg.source {
        TaskSource::Generate => {
            let (id, n_base) = generate(cfg, space)?;
            (id, None, n_base)
        }
        TaskSource::File(path) => {
            let (id, ood) = read_task_file(path, space, &cfg.source)?;
            (id, ood, 0)
        }
        TaskSource::Official { seed, n_base } => {
            let (id, ood) = official(*seed, *n_base, space, &cfg.source)?;
            (id, Some(ood), 0)
        }
    };
    let mut ood = match ood {
        Some(list) => list,
        None => ood_complement(&id, space, cfg.seed, cfg.ood_cap),
    };
    if let OodCap::Count(cap) = cfg.ood_cap {
        ood.truncate(cap as usize);
    }
    if cfg.official_compat {
        ood.truncate(ood.len() / 8 * 8);
    }
    if ood.is_empty() {
        return Err(ConfigError::invalid(
            "task.ood_cap",
            format!(
                "{} ({} pre-training tasks of {}{})",
                cap_str(cfg.ood_cap),
                id.len(),
                space.size,
                if cfg.official_compat {
                    ", floored to a multiple of 8"
                } else {
                    ""
                }
            ),
            "a setting that leaves at least one o.o.d. task",
        )
        .into());
    }
    Ok(TaskSets {
        id: space.vectors(&id),
        ood: space.vectors(&ood),
        n_base,
    })
}

fn cap_str(cap: OodCap) -> String {
    match cap {
        OodCap::Count(n) => n.to_string(),
        OodCap::All => "\"all\"".into(),
    }
}

/// Draws `n_base` parallelogram groups and `n_random` random tasks; returns vector numbers.
fn generate(cfg: &TaskConfig, space: Space) -> Result<(Vec<u32>, usize), DataError> {
    let n_base = cfg.n_base as u64;
    let n_id = 4 * n_base + cfg.n_random as u64;
    if n_id == 0 {
        return Err(ConfigError::invalid(
            "task.n_base",
            "0 (with task.n_random = 0)",
            "n_base >= 1 or n_random >= 1: at least one pre-training task",
        )
        .into());
    }
    if n_id >= space.size as u64 {
        return Err(ConfigError::invalid(
            "task.n_base",
            format!(
                "{} (4·{} + n_random {} = {} tasks)",
                cfg.n_base, cfg.n_base, cfg.n_random, n_id
            ),
            format!(
                "4·n_base + n_random <= p^n_var - 1 = {}, leaving at least one o.o.d. task",
                space.size - 1
            ),
        )
        .into());
    }
    if n_base > 0 && space.dim != 2 {
        return Err(ConfigError::invalid(
            "task.n_base",
            format!("{} (with task.n_var = {})", cfg.n_base, space.dim),
            "0 unless n_var = 2: the parallelogram rule pairs two components; use task.n_random",
        )
        .into());
    }
    if n_base > 0 && space.p < 4 {
        return Err(ConfigError::invalid(
            "task.n_base",
            format!("{} (with task.p = {})", cfg.n_base, space.p),
            "0 unless p >= 4: partners need values x', y' outside {a, b}",
        )
        .into());
    }
    let mut taken = Bits::new(space.size);
    let mut tasks = Vec::with_capacity(n_id as usize);

    // Base tasks: distinct, uniform. Rejection is cheap since 4·n_base < p^2.
    let mut rng = Rng::stream(cfg.seed, Domain::Parallelogram, 0);
    while tasks.len() < cfg.n_base as usize {
        let t = rng.below(space.size);
        if taken.insert(t) {
            tasks.push(t);
        }
    }
    // Partners (a, y'), (x', b), (x', y') with x' not in {a, b}, y' not in {a, b, x'}, none
    // already taken: uniform over the admissible (x', y'), by rejection, then by enumeration.
    let p = space.p;
    for i in 0..cfg.n_base as usize {
        let (a, b) = (tasks[i] / p, tasks[i] % p);
        let free = |x: u32, y: u32, taken: &Bits| {
            !taken.contains(a * p + y) && !taken.contains(x * p + b) && !taken.contains(x * p + y)
        };
        let mut pick = None;
        for _ in 0..64 {
            let x = below_excluding(&mut rng, p, &[a, b]);
            let y = below_excluding(&mut rng, p, &[a, b, x]);
            if free(x, y, &taken) {
                pick = Some((x, y));
                break;
            }
        }
        if pick.is_none() {
            let admissible: Vec<(u32, u32)> = (0..p)
                .filter(|&x| x != a && x != b)
                .flat_map(|x| {
                    (0..p)
                        .filter(move |&y| y != a && y != b && y != x)
                        .map(move |y| (x, y))
                })
                .filter(|&(x, y)| free(x, y, &taken))
                .collect();
            if admissible.is_empty() {
                return Err(ConfigError::invalid(
                    "task.n_base",
                    cfg.n_base,
                    format!(
                        "fewer parallelogram groups for p = {p}: base task ({a}, {b}) has no free partners left"
                    ),
                )
                .into());
            }
            pick = Some(admissible[rng.below(admissible.len() as u32) as usize]);
        }
        let (x, y) = pick.expect("chosen above");
        for t in [a * p + y, x * p + b, x * p + y] {
            taken.insert(t);
            tasks.push(t);
        }
    }
    // Random extra tasks, uniform among the rest.
    if cfg.n_random > 0 {
        let mut rest: Vec<u32> = (0..space.size).filter(|&t| !taken.contains(t)).collect();
        let k = cfg.n_random as usize;
        Rng::stream(cfg.seed, Domain::RandomTasks, 0).partial_shuffle(&mut rest, k);
        tasks.extend_from_slice(&rest[..k]);
    }
    Ok((tasks, cfg.n_base as usize))
}

/// Uniform in `0..p` minus the values of `excl`.
fn below_excluding(rng: &mut Rng, p: u32, excl: &[u32]) -> u32 {
    let mut e: [u32; 3] = [u32::MAX; 3];
    let mut n = 0;
    for &v in excl {
        if !e[..n].contains(&v) {
            e[n] = v;
            n += 1;
        }
    }
    e[..n].sort_unstable();
    let mut r = rng.below(p - n as u32);
    for &v in &e[..n] {
        if r >= v {
            r += 1;
        }
    }
    r
}

/// Every vector not in `id`, in a random order keyed by `seed`; only the first `cap` places are
/// shuffled, so a larger cap extends a smaller cap's list.
fn ood_complement(id: &[u32], space: Space, seed: u64, cap: OodCap) -> Vec<u32> {
    let mut taken = Bits::new(space.size);
    id.iter().for_each(|&t| {
        taken.insert(t);
    });
    let mut rest: Vec<u32> = (0..space.size).filter(|&t| !taken.contains(t)).collect();
    let k = match cap {
        OodCap::Count(n) => (n as usize).min(rest.len()),
        OodCap::All => rest.len(),
    };
    Rng::stream(seed, Domain::OodOrder, 0).partial_shuffle(&mut rest, k);
    rest
}

/// Checks a list of vectors read from a file: dimension, range, duplicates. Returns numbers.
fn check_list(
    list: &[Vec<i64>],
    space: Space,
    what: &str,
    line_of: &dyn Fn(usize) -> String,
) -> Result<Vec<u32>, String> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        let at = line_of(i);
        if v.len() != space.dim as usize {
            return Err(format!(
                "{what} {at}: {} components, expected n_var = {}",
                v.len(),
                space.dim
            ));
        }
        if let Some(c) = v.iter().find(|&&c| !(0..space.p as i64).contains(&c)) {
            return Err(format!(
                "{what} {at}: component {c} outside 0..={} (p = {})",
                space.p - 1,
                space.p
            ));
        }
        let t = space.encode(&v.iter().map(|&c| c as u32).collect::<Vec<_>>());
        if !seen.insert(t) {
            return Err(format!("{what} {at}: duplicate task {v:?}"));
        }
        out.push(t);
    }
    Ok(out)
}

fn file_error(source: &TaskSource, reason: impl Into<String>) -> DataError {
    DataError::TaskFile {
        spec: source.to_string(),
        reason: reason.into(),
    }
}

/// Reads an explicit task list. JSON: `[[a, b], ...]` or `{"pretrain_tasks": [...],
/// "ood_tasks": [...]}` (o.o.d. optional). Text: one task per line, components separated by
/// spaces or commas, `#` comments.
fn read_task_file(
    path: &Path,
    space: Space,
    source: &TaskSource,
) -> Result<(Vec<u32>, Option<Vec<u32>>), DataError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| file_error(source, format!("cannot read: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let (id, ood) = if text.trim_start().starts_with(['[', '{']) {
        parse_json_lists(text, space).map_err(|e| file_error(source, e))?
    } else {
        let mut rows = Vec::new();
        let mut lines = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("");
            let parts: Vec<&str> = line
                .split(|c: char| c.is_whitespace() || matches!(c, ',' | '(' | ')' | '[' | ']'))
                .filter(|s| !s.is_empty())
                .collect();
            if parts.is_empty() {
                continue;
            }
            let row: Result<Vec<i64>, _> = parts.iter().map(|s| s.parse::<i64>()).collect();
            let row = row.map_err(|_| {
                file_error(
                    source,
                    format!("line {}: expected integers, got '{}'", n + 1, line.trim()),
                )
            })?;
            rows.push(row);
            lines.push(n + 1);
        }
        let id = check_list(&rows, space, "task", &|i| format!("on line {}", lines[i]))
            .map_err(|e| file_error(source, e))?;
        (id, None)
    };
    finish_lists(id, ood, space).map_err(|e| file_error(source, e))
}

fn json_list(v: &serde_json::Value, what: &str) -> Result<Vec<Vec<i64>>, String> {
    let arr = v
        .as_array()
        .ok_or_else(|| format!("{what}: expected a list of task vectors"))?;
    arr.iter()
        .enumerate()
        .map(|(i, t)| {
            t.as_array()
                .and_then(|c| c.iter().map(|x| x.as_i64()).collect::<Option<Vec<i64>>>())
                .ok_or_else(|| format!("{what} entry {i}: expected a list of integers, got {t}"))
        })
        .collect()
}

fn parse_json_lists(text: &str, space: Space) -> Result<(Vec<u32>, Option<Vec<u32>>), String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let (id, ood) = match &v {
        serde_json::Value::Array(_) => (json_list(&v, "task list")?, None),
        serde_json::Value::Object(o) => {
            let id = o
                .get("pretrain_tasks")
                .ok_or("a JSON object needs the key \"pretrain_tasks\"")?;
            let ood = o
                .get("ood_tasks")
                .map(|x| json_list(x, "ood_tasks"))
                .transpose()?;
            (json_list(id, "pretrain_tasks")?, ood)
        }
        _ => {
            return Err("expected a JSON list of tasks or an object with \"pretrain_tasks\"".into())
        }
    };
    let id = check_list(&id, space, "pretrain_tasks", &|i| format!("entry {i}"))?;
    let ood = ood
        .map(|l| check_list(&l, space, "ood_tasks", &|i| format!("entry {i}")))
        .transpose()?;
    Ok((id, ood))
}

/// Cross-checks an explicit pair of lists.
fn finish_lists(
    id: Vec<u32>,
    ood: Option<Vec<u32>>,
    space: Space,
) -> Result<(Vec<u32>, Option<Vec<u32>>), String> {
    if id.is_empty() {
        return Err("no pre-training tasks in the list".into());
    }
    if id.len() >= space.size as usize {
        return Err(format!(
            "{} pre-training tasks leave no o.o.d. task in p^n_var = {}",
            id.len(),
            space.size
        ));
    }
    if ood.as_ref().is_some_and(|o| o.is_empty()) {
        return Err(
            "ood_tasks is empty: give at least one o.o.d. task or leave the key out".into(),
        );
    }
    if let Some(ood) = &ood {
        let ids: HashSet<u32> = id.iter().copied().collect();
        if let Some(t) = ood.iter().find(|t| ids.contains(t)) {
            let mut v = vec![0; space.dim as usize];
            space.decode(*t, &mut v);
            return Err(format!("o.o.d. task {v:?} is also a pre-training task"));
        }
    }
    Ok((id, ood))
}

/// The official lists for `(seed, n_base)`.
fn official(
    seed: u64,
    n_base: u32,
    space: Space,
    source: &TaskSource,
) -> Result<(Vec<u32>, Vec<u32>), DataError> {
    if space.p != 29 || space.dim != 2 {
        return Err(ConfigError::invalid(
            "task.p",
            format!(
                "{} (n_var {}) with task.source = {source}",
                space.p, space.dim
            ),
            "p = 29 and n_var = 2: the official task lists are for Z_29^2",
        )
        .into());
    }
    let doc: serde_json::Value =
        serde_json::from_str(OFFICIAL_LISTS).expect("embedded official task lists are valid JSON");
    let runs = doc["runs"].as_array().expect("embedded lists have runs");
    let run = runs
        .iter()
        .find(|r| {
            r["seed"].as_u64() == Some(seed) && r["n_base_tasks"].as_u64() == Some(n_base as u64)
        })
        .ok_or_else(|| {
            let mut have: Vec<String> = runs
                .iter()
                .map(|r| format!("seed={},n_base={}", r["seed"], r["n_base_tasks"]))
                .collect();
            have.dedup();
            file_error(
                source,
                format!(
                    "no such official run; allowed official:{}",
                    have.join(" | official:")
                ),
            )
        })?;
    let id =
        json_list(&run["pretrain_tasks"], "pretrain_tasks").map_err(|e| file_error(source, e))?;
    let ood = json_list(&run["ood_tasks"], "ood_tasks").map_err(|e| file_error(source, e))?;
    let id = check_list(&id, space, "pretrain_tasks", &|i| format!("entry {i}"))
        .map_err(|e| file_error(source, e))?;
    let ood = check_list(&ood, space, "ood_tasks", &|i| format!("entry {i}"))
        .map_err(|e| file_error(source, e))?;
    let (id, ood) = finish_lists(id, Some(ood), space).map_err(|e| file_error(source, e))?;
    Ok((id, ood.expect("given")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_excluding_covers_exactly_the_allowed_values() {
        let mut rng = Rng::stream(0, Domain::Parallelogram, 0);
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            seen[below_excluding(&mut rng, 7, &[2, 5, 2]) as usize] += 1;
        }
        assert_eq!(seen[2], 0);
        assert_eq!(seen[5], 0);
        assert!(
            seen.iter()
                .enumerate()
                .all(|(i, &c)| i == 2 || i == 5 || c > 1200),
            "{seen:?}"
        );
    }
}
