//! `events/header_page`: where a ring-buffer page keeps its timestamp,
//! its commit word and its data. The commit word is a `local_t`, so its
//! size follows the kernel's word size (8 on arm64, 4 on 32-bit ARM).

use crate::format::{parse_fields, FormatError};
use std::io::BufRead;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLayout {
    pub ts_offset: usize,
    pub commit_offset: usize,
    pub commit_size: usize,
    pub data_offset: usize,
}

impl PageLayout {
    pub fn parse(r: impl BufRead) -> Result<Self, FormatError> {
        let lines: Vec<String> = r
            .lines()
            .collect::<Result<_, _>>()
            .map_err(|e| FormatError(e.to_string()))?;
        let fields = parse_fields(lines.iter().map(String::as_str))?;
        let get = |n: &str| {
            fields
                .iter()
                .find(|f| f.name == n)
                .ok_or_else(|| FormatError(format!("header_page has no '{n}' field")))
        };
        let (ts, commit, data) = (get("timestamp")?, get("commit")?, get("data")?);
        if ts.size != 8 || !(commit.size == 4 || commit.size == 8) {
            return Err(FormatError(format!(
                "unexpected header_page sizes: timestamp {} commit {}",
                ts.size, commit.size
            )));
        }
        Ok(PageLayout {
            ts_offset: ts.offset,
            commit_offset: commit.offset,
            commit_size: commit.size,
            data_offset: data.offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_6_18_is_64_bit() {
        let txt = include_str!("../../../tests/fixtures/format/host-6.18-header_page");
        let l = PageLayout::parse(txt.as_bytes()).unwrap();
        assert_eq!(
            l,
            PageLayout {
                ts_offset: 0,
                commit_offset: 8,
                commit_size: 8,
                data_offset: 16
            }
        );
    }

    #[test]
    fn a_32_bit_kernel_has_a_4_byte_commit() {
        // As printed by 32-bit kernels: local_t is a long.
        let txt = "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n\tfield: local_t commit;\toffset:8;\tsize:4;\tsigned:1;\n\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n\tfield: char data;\toffset:12;\tsize:4084;\tsigned:0;\n";
        let l = PageLayout::parse(txt.as_bytes()).unwrap();
        assert_eq!((l.commit_size, l.data_offset), (4, 12));
    }
}
