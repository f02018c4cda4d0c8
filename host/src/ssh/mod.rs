//! SSH transport to a board (ssh2, i.e. libssh2).
//!
//! The pieces, in the order a deploy uses them:
//! - [`dest::resolve`]: `[USER@]HOST[:PORT]`, `-p`, `-l`, `-i` and
//!   `~/.ssh/config` to a [`Target`];
//! - [`Conn::connect`]: TCP, handshake, host key check against
//!   known_hosts ([`known_hosts`], [`HostKeyPolicy`]), login; through
//!   a jump host (`-J`, `ProxyJump`), the same over a `direct-tcpip`
//!   channel of the jump host's own session (`jump`);
//! - [`Conn::upload`]: SCP, or `cat >` where the board has no `scp`
//!   (dropbear);
//! - [`Conn::run`] for short commands and [`Conn::stream`] for the agent,
//!   whose stdout arrives line by line and which is stopped by closing
//!   its stdin (see [`exec`](self::exec) for why the agent must exit
//!   on EOF).
//!
//! While any of it waits for the board, [`alive`] and a watch thread
//! notice a dead link and Ctrl-C.
//!
//! Every failure is an [`SshError`] whose [`SshError::help`] tells the
//! user what to do.

pub mod alive;
mod auth;
mod base64;
mod config;
pub mod dest;
mod error;
pub mod exec;
pub mod hold;
mod hostfile;
mod jump;
pub mod known_hosts;
pub mod lines;
mod pattern;
pub mod session;
pub mod upload;
mod watch;

pub use alive::Alive;
pub(crate) use config::alive_value as config_alive_value;
pub use dest::{resolve, resolve_via, Target};
pub use error::SshError;
pub use exec::{Flow, Output, STOP_GRACE};
pub use hold::Held;
pub use known_hosts::HostKeyPolicy;
pub use session::{Conn, ConnectOpts};
pub use upload::{UploadMethod, UploadOpts};
