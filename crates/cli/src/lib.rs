//! The `vidscope` command's library. `main.rs` parses arguments; everything that can be
//! tested on its own (the load generator, the CRM sandbox) lives here.

pub mod crm_sandbox;
pub mod loadgen;
