//! Docker's and the OCI runtime spec's seccomp JSON (`--security-opt
//! seccomp=FILE.json`), read into the same [`SeccompModel`] hutch's own
//! profiles become.
//!
//! Semantics follow runc with libseccomp: a workload under hutch holds no
//! capabilities, so rules that `includes` a capability never apply and
//! rules that `excludes` one always do; `arches` and `minKernel` are
//! checked against this host; several conditions on the same argument
//! are alternatives (one rule each), on different arguments all must hold.
//! Names this architecture lacks are skipped, as libseccomp does, and
//! reported by `hutch policy check`.

use serde::Deserialize;

use super::errno;
use super::seccomp::{Action, Arch, CmpOp, Condition, NewProcesses, Rule, SeccompModel, Width};
use super::{Location, PolicyError};

/// Docker JSON profiles larger than this are refused before parsing.
pub const MAX_JSON_BYTES: usize = 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonProfile {
    default_action: String,
    default_errno_ret: Option<u32>,
    #[serde(default)]
    syscalls: Option<Vec<JsonSyscall>>,
    #[serde(default)]
    flags: Option<Vec<String>>,
    listener_path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonSyscall {
    #[serde(default)]
    names: Option<Vec<String>>,
    /// The pre-1.0 Docker format named one syscall per entry.
    name: Option<String>,
    action: String,
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<JsonArg>>,
    #[serde(default)]
    includes: Option<JsonFilter>,
    #[serde(default)]
    excludes: Option<JsonFilter>,
    comment: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonArg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonFilter {
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    arches: Option<Vec<String>>,
    min_kernel: Option<String>,
}

/// The host facts a Docker profile's conditions depend on.
#[derive(Debug, Clone, Copy)]
pub struct Host {
    pub arch: Arch,
    /// (major, minor) of the running kernel.
    pub kernel: (u32, u32),
}

impl Host {
    pub fn current() -> Option<Host> {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Some(Host {
            arch: Arch::host()?,
            kernel: parse_kernel(&release).unwrap_or((0, 0)),
        })
    }
}

fn parse_kernel(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// A Docker profile read for one host: the model, and the names skipped
/// because this architecture has no such syscall.
#[derive(Debug, Clone)]
pub struct Converted {
    pub model: SeccompModel,
    pub skipped: Vec<String>,
}

fn arch_names(arch: Arch) -> &'static [&'static str] {
    match arch {
        Arch::X86_64 => &["amd64", "x86_64", "SCMP_ARCH_X86_64"],
        Arch::Aarch64 => &["arm64", "aarch64", "SCMP_ARCH_AARCH64"],
    }
}

fn action(name: &str, errno_ret: Option<u32>) -> Result<Action, String> {
    let errno = errno_ret.unwrap_or(libc::EPERM as u32);
    if !(1..=errno::MAX_ERRNO).contains(&errno) && name == "SCMP_ACT_ERRNO" {
        return Err(format!("errnoRet {errno} is out of range"));
    }
    Ok(match name {
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_ERRNO" => Action::Errno(errno),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_LOG" => Action::Log,
        other => return Err(format!("action {other} is not supported by hutch (hint: SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL_PROCESS, SCMP_ACT_KILL_THREAD, SCMP_ACT_TRAP, SCMP_ACT_LOG)")),
    })
}

fn condition(a: &JsonArg) -> Result<Condition, String> {
    if a.index > 5 {
        return Err(format!("argument index {} is not 0..=5", a.index));
    }
    let (op, value) = match a.op.as_str() {
        "SCMP_CMP_EQ" => (CmpOp::Eq, a.value),
        "SCMP_CMP_NE" => (CmpOp::Ne, a.value),
        "SCMP_CMP_LT" => (CmpOp::Lt, a.value),
        "SCMP_CMP_LE" => (CmpOp::Le, a.value),
        "SCMP_CMP_GT" => (CmpOp::Gt, a.value),
        "SCMP_CMP_GE" => (CmpOp::Ge, a.value),
        // libseccomp: `value` is the mask, `valueTwo` the expected value.
        "SCMP_CMP_MASKED_EQ" => (CmpOp::MaskedEq(a.value), a.value_two),
        other => return Err(format!("unknown operator {other}")),
    };
    Ok(Condition {
        index: a.index as u8,
        op,
        value,
        width: Width::W64,
    })
}

fn applies(inc: &JsonFilter, exc: &JsonFilter, host: Host) -> bool {
    let ours = arch_names(host.arch);
    let has_ours =
        |arches: &Option<Vec<String>>| arches.iter().flatten().any(|a| ours.contains(&a.as_str()));
    // No capability survives into the workload.
    if inc.caps.as_ref().is_some_and(|c| !c.is_empty()) {
        return false;
    }
    if inc.arches.as_ref().is_some_and(|a| !a.is_empty()) && !has_ours(&inc.arches) {
        return false;
    }
    if let Some(min) = inc.min_kernel.as_deref().filter(|m| !m.is_empty()) {
        match parse_kernel(min) {
            Some(min) if host.kernel >= min => {}
            _ => return false,
        }
    }
    !has_ours(&exc.arches)
}

/// Parse a Docker or OCI seccomp JSON profile for `host`.
pub fn parse(text: &str, file: &str, host: Host) -> Result<Converted, PolicyError> {
    if text.len() > MAX_JSON_BYTES {
        return Err(PolicyError::TooLarge {
            file: file.to_string(),
            size: text.len(),
            max: MAX_JSON_BYTES,
        });
    }
    let json: JsonProfile = serde_json::from_str(text).map_err(|e| PolicyError::Syntax {
        at: Location {
            file: file.to_string(),
            line: e.line(),
            column: e.column(),
        },
        message: e
            .to_string()
            .split(" at line ")
            .next()
            .unwrap_or_default()
            .to_string(),
    })?;
    let invalid = |key: String, reason: String| PolicyError::Invalid {
        at: Location {
            file: file.to_string(),
            line: 0,
            column: 0,
        },
        key,
        reason,
    };
    if json.listener_path.is_some() {
        return Err(invalid(
            "listenerPath".into(),
            "seccomp user notification is not supported by hutch".into(),
        ));
    }
    let _ = json.flags;
    let default_action = action(&json.default_action, json.default_errno_ret)
        .map_err(|r| invalid("defaultAction".into(), r))?;
    let mut rules = Vec::new();
    let mut skipped = Vec::new();
    for (i, s) in json.syscalls.iter().flatten().enumerate() {
        let key = |k: &str| format!("syscalls[{i}].{k}");
        let none = JsonFilter::default();
        let inc = s.includes.as_ref().unwrap_or(&none);
        let exc = s.excludes.as_ref().unwrap_or(&none);
        let act = action(&s.action, s.errno_ret).map_err(|r| invalid(key("action"), r))?;
        let conds = s
            .args
            .iter()
            .flatten()
            .map(condition)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|r| invalid(key("args"), r))?;
        if !applies(inc, exc, host) {
            continue;
        }
        let mut names = Vec::new();
        for n in s.names.iter().flatten().chain(s.name.iter()) {
            if host.arch.syscall(n).is_some() {
                names.push(n.clone());
            } else if !skipped.contains(n) {
                skipped.push(n.clone());
            }
        }
        if names.is_empty() {
            continue;
        }
        let mut indexes: Vec<u8> = conds.iter().map(|c| c.index).collect();
        indexes.sort_unstable();
        let repeated = indexes.windows(2).any(|w| w[0] == w[1]);
        let groups: Vec<Vec<Condition>> = if repeated {
            conds.into_iter().map(|c| vec![c]).collect()
        } else {
            vec![conds]
        };
        for conditions in groups {
            rules.push(Rule {
                syscalls: names.clone(),
                arch: Some(host.arch),
                action: act,
                conditions,
                why: s
                    .comment
                    .clone()
                    .unwrap_or_else(|| format!("{file}: syscalls[{i}]")),
            });
        }
    }
    Ok(Converted {
        model: SeccompModel {
            default_action,
            rules,
            new_processes: NewProcesses::Any,
        },
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: Host = Host {
        arch: Arch::X86_64,
        kernel: (6, 1),
    };

    #[test]
    fn docker_semantics() {
        let text = r#"{
          "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
          "syscalls": [
            {"names": ["read", "no_such_call"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
            {"names": ["bpf"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_BPF"]}},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]}
          ]}"#;
        let c = parse(text, "d.json", HOST).unwrap();
        assert_eq!(c.skipped, vec!["no_such_call".to_string()]);
        let names: Vec<&str> = c
            .model
            .rules
            .iter()
            .map(|r| r.syscalls[0].as_str())
            .collect();
        assert_eq!(
            names,
            vec![
                "read",
                "ptrace",
                "arch_prctl",
                "clone3",
                "socket",
                "socket",
                "clone"
            ]
        );
        assert_eq!(c.model.rules[3].action, Action::Errno(38));
        assert_eq!(
            c.model.rules[6].conditions[0].op,
            CmpOp::MaskedEq(0x7E02_0000)
        );
        assert_eq!(c.model.rules[6].conditions[0].value, 0);
        let old = Host {
            kernel: (4, 4),
            ..HOST
        };
        let c = parse(text, "d.json", old).unwrap();
        assert!(!c.model.rules.iter().any(|r| r.syscalls[0] == "ptrace"));
    }

    #[test]
    fn errors_have_line_and_column() {
        let e = parse("{\n  \"defaultAction\": 5\n}", "d.json", HOST)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("d.json:2:"), "{e}");
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel("6.18.0-1-amd64"), Some((6, 18)));
        assert_eq!(parse_kernel("4.8"), Some((4, 8)));
        assert_eq!(parse_kernel("x"), None);
    }
}
