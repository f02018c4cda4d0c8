//! Reading a password at a terminal without echo (rpassword). Passwords
//! never come from the command line (they would show in `ps` and shell
//! history).

use crate::error::HostError;

pub fn prompt(text: &str) -> Result<String, HostError> {
    rpassword::prompt_password(text).map_err(|e| HostError::Io("reading the password".into(), e))
}
