//! OpenSSH's host patterns (`match.c`), shared by ssh_config `Host`
//! lines and known_hosts: `*` matches any run of characters (also
//! none), `?` exactly one, everything else itself; there are no
//! character classes. A list is comma-separated, and a pattern that
//! starts with `!` negates: if it matches, the list does not apply,
//! whatever its other patterns say.

/// What a pattern list says about a string (`match_pattern_list`'s 1,
/// 0 and -1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListMatch {
    /// No pattern matched.
    None,
    /// A pattern matched and no negated one did.
    Positive,
    /// A negated pattern matched: this overrides any positive one.
    Negative,
}

/// `match_pattern_list(s, list, 1)`: the patterns are compared in
/// lower case (the caller lowercases `s` where ssh does).
pub fn match_list(s: &str, list: &str) -> ListMatch {
    let mut positive = false;
    for pat in list.split(',') {
        let (negated, pat) = match pat.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pat),
        };
        if wildmatch(pat.to_ascii_lowercase().as_bytes(), s.as_bytes()) {
            if negated {
                return ListMatch::Negative;
            }
            positive = true;
        }
    }
    if positive {
        ListMatch::Positive
    } else {
        ListMatch::None
    }
}

/// `match_pattern`: the whole of `s` against `pat`, `*` and `?` as
/// wildcards. Iterative, backtracking to the last `*` only, so it is
/// linear-ish whatever the pattern.
pub fn wildmatch(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == s[i]) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some((p, i));
            p += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildmatch(b"*", b"anything"));
        assert!(wildmatch(b"*", b""));
        assert!(wildmatch(b"board-*", b"board-7"));
        assert!(wildmatch(b"b?ard", b"board"));
        assert!(wildmatch(b"b?ard.*", b"board.lan"));
        assert!(wildmatch(b"*.lan", b"pi.lan"));
        assert!(!wildmatch(b"*.lan", b"pi.lan.example"));
        assert!(wildmatch(b"a*b*c", b"axxbyyc"));
        assert!(wildmatch(b"a**c", b"abc"));
        assert!(!wildmatch(b"a*b*c", b"axxbyy"));
        assert!(!wildmatch(b"?board", b"board"));
        assert!(!wildmatch(b"boar", b"board"));
        assert!(!wildmatch(b"board", b"boar"));
        assert!(wildmatch(b"", b""));
        assert!(!wildmatch(b"", b"x"));
        // `[` is literal: the bracketed known_hosts form matches as written.
        assert!(wildmatch(b"[10.0.0.*]:2222", b"[10.0.0.5]:2222"));
    }

    #[test]
    fn a_negated_pattern_wins_over_any_positive_one() {
        assert_eq!(
            match_list("evil.lan", "*.lan,!evil.lan"),
            ListMatch::Negative
        );
        assert_eq!(
            match_list("evil.lan", "!evil.lan,*.lan"),
            ListMatch::Negative
        );
        assert_eq!(
            match_list("good.lan", "*.lan,!evil.lan"),
            ListMatch::Positive
        );
        // A negation alone names nothing.
        assert_eq!(match_list("good.lan", "!evil.lan"), ListMatch::None);
        assert_eq!(match_list("board", "a,BOARD,c"), ListMatch::Positive);
    }
}
