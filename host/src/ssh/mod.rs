//! SSH transport to a board (ssh2).
