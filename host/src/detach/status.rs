//! `status`: the board's captures, one line (or `--json` record) each:
//! id, state, age, signal events recorded, lost, storage used, query.
//! A capture whose agent died has what it left in the kernel removed
//! (its data stays, for `collect`, until `stop`).

use super::listing::{Capture, Listing, State};
use super::Board;
use crate::error::HostError;
use std::io::Write;

#[derive(Debug, Clone, Default)]
pub struct StatusOpts {
    pub json: bool,
}

/// Returns 0 if the board has a capture, 1 if it has none.
pub fn status(b: &Board<'_>, o: &StatusOpts, out: &mut dyn Write) -> Result<i32, HostError> {
    let l = b.list()?;
    if let Some(dead) = l.captures.iter().find(|c| l.state(c) == State::Died) {
        // One agent's --clean removes every dead agent's leftovers.
        super::stop::clean(b, dead)?;
    }
    let text = if o.json { json(b, &l) } else { table(b, &l) };
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .or_else(|e| {
            if crate::stdout::reader_gone(&e) {
                Ok(())
            } else {
                Err(crate::stdout::error(e))
            }
        })?;
    Ok(if l.captures.is_empty() { 1 } else { 0 })
}

fn age(secs: Option<u64>) -> String {
    match secs {
        None => "?".into(),
        Some(s) if s < 120 => format!("{s}s"),
        Some(s) if s < 7200 => format!("{}m", s / 60),
        Some(s) if s < 172_800 => format!("{}h", s / 3600),
        Some(s) => format!("{}d", s / 86400),
    }
}

fn row(c: &Capture) -> (u64, u64, u64) {
    let s = c.stat.clone().unwrap_or_default();
    (s.signals, s.dropped, s.bytes)
}

/// The table, for a person: names from the board are escaped.
pub fn table(b: &Board<'_>, l: &Listing) -> String {
    if l.captures.is_empty() {
        return format!("no captures on {} in {}\n", b.host, b.dir);
    }
    let mut s = format!(
        "{:<8}  {:<8}  {:>5}  {:>8}  {:>6}  {:>9}  {}\n",
        "ID", "STATE", "AGE", "SIGNALS", "LOST", "USED", "QUERY"
    );
    for c in &l.captures {
        let (signals, lost, bytes) = row(c);
        s += &format!(
            "{:<8}  {:<8}  {:>5}  {:>8}  {:>6}  {:>9}  {}\n",
            c.id,
            l.state(c).as_str(),
            age(c.age(l.now)),
            signals,
            lost,
            super::size::human(bytes),
            whosent_proto::escape::escape(
                c.meta("query")
                    .filter(|q| !q.is_empty())
                    .unwrap_or("(all signals)")
            )
        );
    }
    s
}

/// One `capture` record a line (docs/json-schema.md), `host` and
/// `type` first as in every record.
pub fn json(b: &Board<'_>, l: &Listing) -> String {
    use serde_json::Value;
    let num = |v: Option<&str>| {
        v.and_then(|t| t.parse::<u64>().ok())
            .map_or(Value::Null, Value::from)
    };
    let mut s = String::new();
    for c in &l.captures {
        let (signals, lost, bytes) = row(c);
        let mut fields: Vec<(&str, Value)> = Vec::new();
        if let Some(h) = b.label() {
            fields.push(("host", h.into()));
        }
        fields.extend([
            ("type", "capture".into()),
            ("id", c.id.clone().into()),
            ("state", l.state(c).as_str().into()),
            ("query", c.meta("query").unwrap_or("").into()),
            ("started", num(c.meta("started"))),
            ("age", c.age(l.now).map_or(Value::Null, Value::from)),
            ("signals", signals.into()),
            ("lost", lost.into()),
            ("bytes", bytes.into()),
            ("max_size", num(c.meta("max_size"))),
            ("segments", c.segments.len().into()),
            ("dir", b.path(&c.id).into()),
        ]);
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        s += &format!("{{{}}}\n", body.join(","));
    }
    s
}
