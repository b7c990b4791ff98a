//! Unit tests of the pure core (and of the retry loop, against an in-memory object).

mod converge;
mod destination_rule;
mod errors;
mod fixtures;
mod guards;
mod managed;
mod props;
mod render;
