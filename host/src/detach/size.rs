//! `--max-size SIZE`: bytes, or a number with a binary unit (`512K`,
//! `8M`, `1MiB`, `1G`), as `du -h` and dd's `bs=` count them.

use crate::error::HostError;

/// The default: 8 MiB.
pub const DEFAULT: u64 = 8 << 20;

/// The least the agent takes (docs/detached.md): four segments of at
/// least 16 KiB, each room for a few kernel pages.
pub const MIN: u64 = 64 << 10;

pub fn parse(text: &str) -> Result<u64, HostError> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => {
            return Err(HostError::Usage(format!(
                "--max-size {text}: not a size; give bytes or a number with K, M or G (binary: 1M is 1 MiB), e.g. 8M"
            )))
        }
    };
    let n: u64 = num.parse().map_err(|_| {
        HostError::Usage(format!(
            "--max-size {text}: not a size; give a whole number of bytes, K, M or G, e.g. 512K"
        ))
    })?;
    let bytes = n
        .checked_mul(1 << shift)
        .ok_or_else(|| HostError::Usage(format!("--max-size {text}: too large")))?;
    if bytes < MIN {
        return Err(HostError::Usage(format!(
            "--max-size {text}: at least 64K ({MIN} bytes): the capture keeps four segments of a quarter each"
        )));
    }
    Ok(bytes)
}

/// Bytes in the largest unit they fill: `1.0 MiB`, `512 KiB`, `900 B`.
pub fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_bytes_or_binary_units() {
        for (t, want) in [
            ("8M", 8 << 20),
            ("1MiB", 1 << 20),
            ("512K", 512 << 10),
            ("512k", 512 << 10),
            ("65536", 65536),
            ("1G", 1 << 30),
            ("2 MB", 2 << 20),
        ] {
            assert_eq!(parse(t).unwrap(), want, "{t}");
        }
        for (t, want) in [
            ("1K", "at least 64K"),
            ("8X", "not a size"),
            ("M", "not a size"),
            ("-1M", "not a size"),
            ("99999999999999G", "too large"),
        ] {
            let e = parse(t).unwrap_err();
            assert!(matches!(e, HostError::Usage(_)), "{t}");
            assert!(e.to_string().contains(want), "{t}: {e}");
        }
        assert_eq!(human(1 << 20), "1.0 MiB");
        assert_eq!(human(4096), "4 KiB");
    }
}
