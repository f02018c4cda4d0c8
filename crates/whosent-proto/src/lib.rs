//! The event model and the JSON Lines wire format shared by
//! `whosent-agent` (which writes records) and `whosent-deploy` (which
//! reads and renders them).
//!
//! Programs that speak the protocol depend on this crate. The format
//! itself is documented message by message in `docs/json-schema.md`;
//! [`SCHEMA_VERSION`] changes only when an existing field changes meaning.

pub mod cause;
pub mod code;
pub mod escape;
pub mod json;
pub mod query;
pub mod record;
pub mod render;
pub mod signal;

#[cfg(feature = "decode")]
pub mod decode;

/// The `v` carried by every `ready` record.
pub const SCHEMA_VERSION: u32 = 1;
