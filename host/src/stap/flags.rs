//! The SystemTap backend's own flags (`--backend stap` and what it
//! needs), flattened into the run's command line, and the check that
//! none of them is given to another backend.

use crate::cli::Backend;
use crate::error::HostError;
use clap::Args;
use std::path::PathBuf;

const KERNEL_BUILD_HELP: &str = "The board kernel's build tree, as stap -r takes it: \
lib/modules/RELEASE/build of a Yocto or Buildroot build, or of a Debian headers layout \
(scripts/stap-kernel-tree.sh makes one for Debian kernels). Its release must be the board's `uname -r`.";

const STAPRUN_BUNDLE_HELP: &str = "A tar.gz with run-staprun, bin/staprun, bin/stapio and \
their libraries (scripts/staprun-bundle.sh builds one), pushed with the module and run from \
there when the board has no staprun of its own.";

/// The SystemTap backend: `--backend stap` and what it needs.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "SystemTap backend")]
pub struct StapArgs {
    /// Trace with the ftrace agent, the eBPF agent (or whichever works: auto), or a SystemTap module
    #[arg(long, value_enum, default_value_t = Backend::Ftrace, value_name = "BACKEND")]
    pub backend: Backend,
    #[arg(long, value_name = "DIR", long_help = KERNEL_BUILD_HELP)]
    pub kernel_build: Option<PathBuf>,
    /// A sysroot holding lib/modules/RELEASE/build for the board's release (instead of --kernel-build)
    #[arg(long, value_name = "DIR", conflicts_with = "kernel_build")]
    pub sysroot: Option<PathBuf>,
    #[arg(long, value_name = "FILE", long_help = STAPRUN_BUNDLE_HELP)]
    pub staprun_bundle: Option<PathBuf>,
    /// stap -R: use this SystemTap runtime (turns off whosent's own runtime adaptation)
    #[arg(short = 'R', long = "stap-runtime", value_name = "DIR")]
    pub stap_runtime: Option<PathBuf>,
    /// stap -D: a C macro for the module build (repeatable), e.g. -D MAXSKIPPED=1000
    #[arg(short = 'D', value_name = "NAME[=VALUE]")]
    pub define: Vec<String>,
}

impl StapArgs {
    /// The first stap-only flag given, if any.
    fn first_given(&self) -> Option<&'static str> {
        [
            ("--kernel-build", self.kernel_build.is_some()),
            ("--sysroot", self.sysroot.is_some()),
            ("--staprun-bundle", self.staprun_bundle.is_some()),
            ("-R/--stap-runtime", self.stap_runtime.is_some()),
            ("-D", !self.define.is_empty()),
        ]
        .into_iter()
        .find_map(|(flag, given)| given.then_some(flag))
    }

    /// The SystemTap flags mean nothing to another backend: say so rather
    /// than ignore them.
    pub fn only_for_stap(&self) -> Result<(), HostError> {
        match self.first_given() {
            Some(flag) => Err(HostError::Usage(format!(
                "{flag} is for --backend stap; add --backend stap, or drop it for the ftrace agent"
            ))),
            None => Ok(()),
        }
    }
}
