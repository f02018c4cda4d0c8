//! The SSH connection as a transport: the methods are `Conn`'s own.

use super::{Flow, Hold, Output, SshError, Transport, UploadMethod};
use crate::ssh::{Conn, UploadOpts};
use std::sync::atomic::AtomicBool;

impl Transport for Conn {
    fn run(&self, cmd: &str) -> Result<Output, SshError> {
        Conn::run(self, cmd)
    }

    fn hold(&self, cmd: &str) -> Result<(Output, Box<dyn Hold + '_>), SshError> {
        let (out, held) = Conn::hold(self, cmd)?;
        Ok((out, Box::new(held)))
    }

    fn upload(
        &self,
        data: &[u8],
        path: &str,
        mode: i32,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<UploadMethod, SshError> {
        let opts = UploadOpts {
            progress: Some(progress),
            ..Default::default()
        };
        self.upload_with(data, path, mode, opts)
    }

    fn stream(
        &self,
        cmd: &str,
        on_line: &mut dyn FnMut(&[u8]) -> Flow,
        on_stderr: &mut dyn FnMut(&[u8]),
        stop: &AtomicBool,
    ) -> Result<i32, SshError> {
        Conn::stream(self, cmd, on_line, on_stderr, stop)
    }

    fn stream_bytes(
        &self,
        cmd: &str,
        on_data: &mut dyn FnMut(&[u8]) -> Flow,
        on_stderr: &mut dyn FnMut(&[u8]),
        stop: &AtomicBool,
    ) -> Result<i32, SshError> {
        Conn::stream_bytes(self, cmd, on_data, on_stderr, stop)
    }
}
