//! whosent-ebpf-agent as a library: the binary parses arguments (the
//! ftrace agent's parser, [`whosent_agent::args`]), calls [`run::run`]
//! and maps the outcome to an exit status.
//!
//! - [`object`]: the BPF program, built by build.rs from ebpf/;
//! - [`layout`]: its field offsets, from the events' format files;
//! - [`load`]: loading, maps, attaching;
//! - [`source`]: reading its events;
//! - [`event`]: an event as the record the ftrace backend reads, for
//!   the shared pipeline (whosent-analysis);
//! - [`fold`]: storms folded in the kernel, read back as `repeat` records;
//! - [`pidns`]: the namespaces the sender's pid is looked up in;
//! - [`run`]: the capture loop, run alone (the pipeline on the board);
//! - [`stream`]: `--stream`, the capture stream for the host's pipeline.

pub mod error;
pub mod event;
pub mod fold;
pub mod layout;
pub mod load;
pub mod object;
pub mod pidns;
pub mod run;
pub mod source;
pub mod stream;

pub const HELP: &str = "\
whosent-ebpf-agent: report who sends signals, from an eBPF program on signal:signal_generate

USAGE: whosent-ebpf-agent [QUERY] [--count N] [--duration SECS] [--human] [--until-exit] [--fold] [--stream]

Writes one JSON object per line on stdout (schema: docs/json-schema.md), as
whosent-agent does: `ready`, a `signal` record per signal, `exit` records of the --pid and
--comm processes, `lost`, `end`.
The sender's pid, tid, uid, comm and namespace pid are read in the kernel
at the moment of the signal.

QUERY (repeat a flag to match any of its values; different flags must all match):
  -s, --sig SIG          signal, as `kill -l` names it: KILL, SIGKILL, 9, RTMIN+3
      --pid PID          target process
      --comm NAME        target command name (as in /proc/PID/comm)
      --sender-pid PID   sending process
      --sender-comm NAME sending command name
      --pid-ns PID       --pid and --sender-pid are pids inside the pid namespace of
                         process PID (given as seen here, as `nsenter -t` takes it)

CAPTURE:
      --count N          stop after N signals
      --duration SECS    stop after SECS seconds
      --human            print one line per signal instead of JSON
      --until-exit       stop once every --pid process has ended (their `exit` records)
      --fold             fold storms in the kernel: a signal like one already reported
                         (sender, target, signal, code, result) is counted, not sent, and
                         written in `repeat` records (not with --human or --count)
      --stream           write the binary capture stream (docs/stream-format.md) for
                         whosent-deploy, which makes the records: how it runs this agent
      --buffer-kb KB     the ring buffer (or each CPU's perf buffer) [default: 2048]
      --tracefs DIR      where the events' format files are (default: find or mount it)

Needs root and a kernel with CONFIG_BPF_SYSCALL and CONFIG_BPF_EVENTS (5.2+;
the ring buffer and namespace pids need 5.8); no BTF. Everything it loads is
released when it exits, however it exits.
Exit status: 0 if a signal was reported, 1 if none, 2 on usage or environment errors.
";
