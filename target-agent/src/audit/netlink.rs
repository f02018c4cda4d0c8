//! The audit netlink socket (NETLINK_AUDIT), spoken without auditctl:
//! requests with their ACKs, and the records the kernel sends.
//!
//! The messages are include/uapi/linux/audit.h's: AUDIT_GET/AUDIT_SET
//! carry `struct audit_status`, AUDIT_ADD_RULE/AUDIT_DEL_RULE/
//! AUDIT_LIST_RULES `struct audit_rule_data`; records arrive as
//! messages whose type is the record type (1300 SYSCALL, …) and whose
//! payload is the text `audit(TIME:SERIAL): fields`.

use std::io;

pub const NETLINK_AUDIT: i32 = 9;
pub const AUDIT_GET: u16 = 1000;
pub const AUDIT_SET: u16 = 1001;
pub const AUDIT_LIST_RULES: u16 = 1013;
pub const AUDIT_ADD_RULE: u16 = 1011;
pub const AUDIT_DEL_RULE: u16 = 1012;
/// The group that copies every record to readers beside auditd
/// (AUDIT_NLGRP_READLOG, 3.16+; needs CAP_AUDIT_READ).
pub const AUDIT_NLGRP_READLOG: u32 = 1;
pub const AUDIT_STATUS_ENABLED: u32 = 0x1;
pub const AUDIT_STATUS_PID: u32 = 0x4;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const HDR: usize = 16;

/// `struct audit_status`, the fields whosent reads and sets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    pub enabled: u32,
    /// auditd's pid, 0 when none runs.
    pub pid: u32,
}

pub struct Socket {
    fd: i32,
    seq: u32,
}

fn last() -> io::Error {
    io::Error::last_os_error()
}

impl Socket {
    pub fn open() -> io::Result<Socket> {
        // SAFETY: plain socket(2); the fd is owned by the Socket.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_AUDIT,
            )
        };
        if fd < 0 {
            return Err(last());
        }
        Ok(Socket { fd, seq: 0 })
    }

    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// Joins the read-log multicast group (records as auditd gets them),
    /// by binding to it as systemd-journald does.
    pub fn join_readlog(&self) -> io::Result<()> {
        // SAFETY: a zeroed sockaddr_nl with the family and group set.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        // nl_groups is a bit mask: group n is bit n-1.
        sa.nl_groups = 1 << (AUDIT_NLGRP_READLOG - 1);
        // SAFETY: sa is valid for its size.
        let rc = unsafe {
            libc::bind(
                self.fd,
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc != 0 {
            return Err(last());
        }
        Ok(())
    }

    fn send(&mut self, ty: u16, flags: u16, payload: &[u8]) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let len = HDR + payload.len();
        let mut m = Vec::with_capacity(len);
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        m.extend_from_slice(&self.seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        // SAFETY: a zeroed sockaddr_nl addresses the kernel (pid 0).
        let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        to.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: m and to are valid for the lengths given.
        let n = unsafe {
            libc::sendto(
                self.fd,
                m.as_ptr().cast(),
                m.len(),
                0,
                (&to as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if n < 0 {
            return Err(last());
        }
        Ok(self.seq)
    }

    /// Receives one datagram into `buf`; its messages as (type, payload).
    pub fn recv<'a>(&self, buf: &'a mut [u8]) -> io::Result<Vec<(u16, &'a [u8])>> {
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::recv(self.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(last());
        }
        Ok(messages(&buf[..n as usize]))
    }

    /// Sends a request and waits for its ACK (or error).
    fn request(&mut self, ty: u16, payload: &[u8]) -> io::Result<()> {
        let seq = self.send(ty, NLM_F_ACK, payload)?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            for (t, p) in self.recv(&mut buf)? {
                if t == NLMSG_ERROR && p.len() >= 4 + HDR && seq_of(&p[4..]) == seq {
                    let err = i32::from_ne_bytes(p[..4].try_into().unwrap_or_default());
                    return if err == 0 {
                        Ok(())
                    } else {
                        Err(io::Error::from_raw_os_error(-err))
                    };
                }
            }
        }
    }

    pub fn status(&mut self) -> io::Result<Status> {
        self.send(AUDIT_GET, 0, &[])?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            for (t, p) in self.recv(&mut buf)? {
                if t == AUDIT_GET && p.len() >= 16 {
                    let w = |i: usize| {
                        u32::from_ne_bytes(p[i * 4..i * 4 + 4].try_into().unwrap_or_default())
                    };
                    return Ok(Status {
                        enabled: w(1),
                        pid: w(3),
                    });
                }
                if t == NLMSG_ERROR && p.len() >= 4 {
                    let err = i32::from_ne_bytes(p[..4].try_into().unwrap_or_default());
                    if err != 0 {
                        return Err(io::Error::from_raw_os_error(-err));
                    }
                }
            }
        }
    }

    /// AUDIT_SET of the fields in `mask` (AUDIT_STATUS_*).
    pub fn set(&mut self, mask: u32, enabled: u32, pid: u32) -> io::Result<()> {
        let mut s = [0u32; 11];
        s[0] = mask;
        s[1] = enabled;
        s[3] = pid;
        let bytes: Vec<u8> = s.iter().flat_map(|w| w.to_ne_bytes()).collect();
        self.request(AUDIT_SET, &bytes)
    }

    pub fn add_rule(&mut self, rule: &[u8]) -> io::Result<()> {
        self.request(AUDIT_ADD_RULE, rule)
    }

    pub fn del_rule(&mut self, rule: &[u8]) -> io::Result<()> {
        self.request(AUDIT_DEL_RULE, rule)
    }

    /// Every rule the kernel has, each as its `audit_rule_data` bytes.
    pub fn list_rules(&mut self) -> io::Result<Vec<Vec<u8>>> {
        let seq = self.send(AUDIT_LIST_RULES, NLM_F_DUMP, &[])?;
        let mut buf = vec![0u8; 1 << 16];
        let mut rules = Vec::new();
        loop {
            // SAFETY: buf is valid for its length.
            let n = unsafe { libc::recv(self.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(last());
            }
            for (t, p, s) in messages_seq(&buf[..n as usize]) {
                if s != seq {
                    continue;
                }
                match t {
                    AUDIT_LIST_RULES => rules.push(p.to_vec()),
                    NLMSG_DONE => return Ok(rules),
                    NLMSG_ERROR if p.len() >= 4 => {
                        let err = i32::from_ne_bytes(p[..4].try_into().unwrap_or_default());
                        if err != 0 {
                            return Err(io::Error::from_raw_os_error(-err));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: the fd is ours.
        unsafe { libc::close(self.fd) };
    }
}

fn seq_of(hdr: &[u8]) -> u32 {
    u32::from_ne_bytes(hdr[8..12].try_into().unwrap_or_default())
}

/// The messages of one datagram (NLMSG_ALIGN of 4).
pub fn messages(b: &[u8]) -> Vec<(u16, &[u8])> {
    messages_seq(b)
        .into_iter()
        .map(|(t, p, _)| (t, p))
        .collect()
}

fn messages_seq(mut b: &[u8]) -> Vec<(u16, &[u8], u32)> {
    let mut out = Vec::new();
    while b.len() >= HDR {
        let len = u32::from_ne_bytes(b[..4].try_into().unwrap_or_default()) as usize;
        let ty = u16::from_ne_bytes(b[4..6].try_into().unwrap_or_default());
        if ty >= 1100 {
            // A record: the kernel sends each in a datagram of its own
            // and sets nlmsg_len to the payload's length, without the
            // header (`audit_log_end` in kernel/audit.c: "nlmsg_len =
            // skb->len - NLMSG_HDRLEN"), unlike any other netlink family.
            let end = (HDR + len).min(b.len());
            out.push((ty, &b[HDR..end], seq_of(b)));
            break;
        }
        if len < HDR || len > b.len() {
            break;
        }
        out.push((ty, &b[HDR..len], seq_of(b)));
        let next = (len + 3) & !3;
        b = b.get(next..).unwrap_or(&[]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ty: u16, len: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&len.to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(payload);
        m
    }

    #[test]
    fn a_record_length_counts_its_payload_only() {
        let text = b"audit(1.5:9): opid=42 ocomm=\"sleep\"";
        let m = msg(1318, text.len() as u32, text);
        assert_eq!(messages(&m), [(1318, &text[..])]);
        // Replies are ordinary netlink messages, header included.
        let mut two = msg(2, 20, &[0; 4]);
        two.extend(msg(3, 16, &[]));
        assert_eq!(
            messages(&two).iter().map(|m| m.0).collect::<Vec<_>>(),
            [2, 3]
        );
    }
}
