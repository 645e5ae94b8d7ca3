//! modicl's foundations, shared by every other crate and depending on none of them:
//!
//! - [`rng`]: the seeded, version-stable random number generator (tasks, input splits,
//!   batches and weight initialisation all draw from it);
//! - [`fs`]: atomic file writes, so a crash never leaves a half-written file;
//! - [`numpy`]: numpy's legacy Mersenne Twister and shuffle, for the official input split.

pub mod fs;
pub mod numpy;
pub mod rng;
