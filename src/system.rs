//! The external commands hostcert runs (sshd, systemctl, authselect), behind one seam.
//!
//! On the running system commands run directly; under `--root DIR` they run chrooted into DIR
//! when DIR has the program, so a check such as `sshd -t` uses the root's own sshd.

use std::path::Path;
use std::process::Command;

use crate::error::{Error, Result};
use crate::paths::{Root, SSHD_PID_FILES, SYSTEMD_RUNNING};

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Whether it exited 0.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs commands on the root's system. Tests substitute a recorder where the real program
/// cannot exist on this machine (authselect lives only on CentOS 8+).
pub trait System {
    /// Runs `program` (an absolute path inside the root) with `args`.
    fn run(&self, root: &Root, program: &str, args: &[&str]) -> Result<Output>;
}

/// Runs real commands.
#[derive(Debug, Default, Clone, Copy)]
pub struct Real;

impl System for Real {
    fn run(&self, root: &Root, program: &str, args: &[&str]) -> Result<Output> {
        let mut command = if root.is_host() {
            Command::new(program)
        } else {
            let mut c = Command::new("chroot");
            c.arg(root.dir()).arg(program);
            c
        };
        command.args(args).env("LC_ALL", "C");
        let line = format!("{program} {}", args.join(" "));
        let out = command.output().map_err(|e| Error::Command {
            command: line.clone(),
            message: e.to_string(),
        })?;
        Ok(Output {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// Whether the root has `program` (a system path) to run.
pub fn has_program(root: &Root, program: &str) -> bool {
    root.resolve(program)
        .map(|p| root.join(p).is_file())
        .unwrap_or(false)
}

/// How an sshd reload went.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "reload", content = "detail")]
pub enum Reload {
    /// Reloaded through systemd or SIGHUP.
    Reloaded(String),
    /// sshd is not running: it reads the new files when it starts.
    NotRunning,
    /// Not attempted, and why.
    Skipped(String),
}

impl std::fmt::Display for Reload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reload::Reloaded(how) => write!(f, "sshd reloaded ({how})"),
            Reload::NotRunning => {
                f.write_str("sshd is not running: it reads the new configuration when it starts")
            }
            Reload::Skipped(why) => write!(f, "sshd not reloaded: {why}"),
        }
    }
}

/// Reloads sshd: `systemctl reload` when systemd runs, else SIGHUP to the pid in sshd's pid file.
pub fn reload_sshd(root: &Root, system: &dyn System, service: &str) -> Result<Reload> {
    if !root.is_host() {
        return Ok(Reload::Skipped(format!(
            "{} is not the running system",
            root.dir().display()
        )));
    }
    if Path::new(SYSTEMD_RUNNING).is_dir() {
        let active = system.run(root, "systemctl", &["is-active", "--quiet", service])?;
        if !active.success {
            return Ok(Reload::NotRunning);
        }
        let out = system.run(root, "systemctl", &["reload", service])?;
        if !out.success {
            return Err(Error::Command {
                command: format!("systemctl reload {service}"),
                message: out.stderr.trim().to_string(),
            });
        }
        return Ok(Reload::Reloaded(format!("systemctl reload {service}")));
    }
    for pid_file in SSHD_PID_FILES {
        let Ok(text) = std::fs::read_to_string(pid_file) else {
            continue;
        };
        let Ok(pid) = text.trim().parse::<i32>() else {
            continue;
        };
        let pid = nix::unistd::Pid::from_raw(pid);
        return match nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP) {
            Ok(()) => Ok(Reload::Reloaded(format!(
                "SIGHUP to pid {pid} from {pid_file}"
            ))),
            Err(nix::errno::Errno::ESRCH) => Ok(Reload::NotRunning),
            Err(e) => Err(Error::Command {
                command: format!("kill -HUP {pid}"),
                message: e.to_string(),
            }),
        };
    }
    Ok(Reload::NotRunning)
}
