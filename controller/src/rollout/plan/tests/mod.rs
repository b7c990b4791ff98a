//! Tests of the planner (the blue-green ones are in `bluegreen`).
//!
//! - `fixtures`: builders for rollouts and observed worlds, and helpers that read a plan by
//!   meaning;
//! - `model`: a model cluster (pods with start-up delays and readiness failures, Services, a
//!   faithful mesh) that checks the safety invariants after every applied intent;
//! - `tables`: one test per step kind and transition, named after the scenario;
//! - `invariants`: property tests of DESIGN section 3's six invariants on random worlds;
//! - `simulation`: `plan -> apply -> advance time -> plan` on random releases with random user
//!   actions, crashes and failures, checking the invariants at every tick.

mod bluegreen;
mod fixtures;
mod invariants;
mod model;
mod simulation;
mod tables;
