//! Reading a password at a terminal without echo. Passwords never come
//! from the command line (they would show in `ps` and shell history).

use crate::error::HostError;
use std::io::{self, BufRead, Write};

pub fn prompt(text: &str) -> Result<String, HostError> {
    let mut err = io::stderr();
    let _ = write!(err, "{text}");
    let _ = err.flush();
    // SAFETY: termios calls on fd 0 with a zeroed struct filled by tcgetattr.
    let mut old: libc::termios = unsafe { std::mem::zeroed() };
    let have_tty = unsafe { libc::tcgetattr(0, &mut old) } == 0;
    if have_tty {
        let mut quiet = old;
        quiet.c_lflag &= !libc::ECHO;
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &quiet) };
    }
    let mut line = String::new();
    let r = io::stdin().lock().read_line(&mut line);
    if have_tty {
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &old) };
    }
    let _ = writeln!(err);
    r.map_err(|e| HostError::Io("reading the password".into(), e))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
