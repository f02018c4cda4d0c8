//! The kernel-side event filter built from a query.
//!
//! Kernel filters (`Documentation/trace/events.rst`, "Event filtering")
//! compare fields with constants. Only the signal numbers and the target
//! comm go into the kernel: the event's `pid` and the header's
//! `common_pid` are thread ids, and a process grows threads after the
//! capture starts (a worker thread that faults gets the SIGSEGV), so a
//! filter on thread ids would miss them. The agent matches processes
//! itself, from its process table.

use whosent_proto::query::Query;

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
pub fn build(q: &Query) -> String {
    let mut terms = Vec::new();
    // Sorted by inserting in place: a handful of numbers, and a std sort
    // would add ~2.3 KB to the agent (docs/agent-size.md).
    let mut sigs: Vec<i32> = Vec::with_capacity(q.sigs.len());
    for &s in &q.sigs {
        sigs.insert(sigs.partition_point(|&x| x < s), s);
    }
    terms.extend(any_of("sig", &sigs));
    if let Some(c) = q.comm.as_deref().filter(|c| literal(c)) {
        terms.push(format!("comm == \"{c}\""));
    }
    terms.join(" && ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combines_what_the_kernel_can_filter() {
        let mut q = Query::default();
        assert_eq!(build(&q), "");
        q.sigs = vec![15, 9];
        q.comm = Some("my app".into());
        q.pids = vec![10];
        q.sender_pids = vec![7];
        assert_eq!(build(&q), r#"(sig == 9 || sig == 15) && comm == "my app""#);
    }

    #[test]
    fn leaves_unsafe_comms_to_the_agent() {
        let q = Query {
            comm: Some("a*b".into()),
            ..Default::default()
        };
        assert_eq!(build(&q), "");
        let q = Query {
            comm: Some("x\"y".into()),
            sigs: vec![9],
            ..Default::default()
        };
        assert_eq!(build(&q), "sig == 9");
    }
}
