//! modicl's trainer. So far: the learning-rate schedule (the training loop, evaluation, run
//! directories and checkpoints are the training issue's work still to come).

pub mod schedule;
