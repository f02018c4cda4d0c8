//! The kernel-side event filter built from a query.
//!
//! Kernel filters (`Documentation/trace/events.rst`, "Event filtering")
//! compare fields with constants. The target's `pid` field and the
//! header's `common_pid` are thread ids, so a query for a process lists
//! every thread it had when the capture started; the agent re-checks
//! every condition itself, so a thread born later is caught there.

use whosent_proto::query::Query;

/// What the kernel filter can express for one query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterInput<'a> {
    pub query: Option<&'a Query>,
    /// Thread ids of each `--pid` process.
    pub target_tids: &'a [i32],
    /// Thread ids of each `--sender-pid` process.
    pub sender_tids: &'a [i32],
}

fn any_of(field: &str, values: &[i32]) -> Option<String> {
    match values {
        [] => None,
        [v] => Some(format!("{field} == {v}")),
        vs => Some(format!(
            "({})",
            vs.iter()
                .map(|v| format!("{field} == {v}"))
                .collect::<Vec<_>>()
                .join(" || ")
        )),
    }
}

/// A comm the filter parser takes literally: no quote and no glob
/// character (the kernel treats `*?[` as a glob in string compares).
fn literal(s: &str) -> bool {
    !s.contains(['"', '*', '?', '[', ']', '\\'])
}

/// The filter text, or "" when everything passes.
pub fn build(q: &Query, target_tids: &[i32], sender_tids: &[i32]) -> String {
    let mut terms = Vec::new();
    let mut sigs = q.sigs.clone();
    sigs.sort_unstable();
    terms.extend(any_of("sig", &sigs));
    terms.extend(any_of("pid", target_tids));
    if let Some(c) = q.comm.as_deref().filter(|c| literal(c)) {
        terms.push(format!("comm == \"{c}\""));
    }
    terms.extend(any_of("common_pid", sender_tids));
    terms.join(" && ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combines_what_the_kernel_can_filter() {
        let mut q = Query::default();
        assert_eq!(build(&q, &[], &[]), "");
        q.sigs = vec![15, 9];
        q.comm = Some("my app".into());
        assert_eq!(
            build(&q, &[10, 11], &[7]),
            r#"(sig == 9 || sig == 15) && (pid == 10 || pid == 11) && comm == "my app" && common_pid == 7"#
        );
    }

    #[test]
    fn leaves_unsafe_comms_to_the_agent() {
        let q = Query {
            comm: Some("a*b".into()),
            ..Default::default()
        };
        assert_eq!(build(&q, &[], &[]), "");
        let q = Query {
            comm: Some("x\"y".into()),
            ..Default::default()
        };
        assert_eq!(build(&q, &[3], &[]), "pid == 3");
    }
}
