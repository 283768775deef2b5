//! The `vidscope` command's library. `main.rs` parses arguments; everything that can be
//! tested on its own (the load generator) lives here.

pub mod loadgen;
