//! hutch's profile format (TOML): the serde schema, parsing one file into a
//! [`Layer`] with file:line:column errors, and merging an `extends` chain
//! into a resolved [`Profile`]. `policies/README.md` documents every key.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::errno;
use super::landlock::{self, LandlockModel, PathRule, ScopeKind, Target};
use super::seccomp::{
    self, Action, Arch, CmpOp, Condition, NewProcesses, Rule, SeccompModel, Width,
};
use super::{Location, PolicyError};

/// Profiles larger than this are refused before parsing.
pub const MAX_PROFILE_BYTES: usize = 256 * 1024;
/// How many profiles an `extends` chain may hold.
pub const MAX_EXTENDS_DEPTH: usize = 8;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSchema {
    #[allow(dead_code)]
    description: Option<String>,
    extends: Option<Spanned<String>>,
    seccomp: Option<SeccompSchema>,
    landlock: Option<LandlockSchema>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeccompSchema {
    enabled: Option<bool>,
    default_action: Option<Spanned<String>>,
    default_errno: Option<Spanned<ErrnoSchema>>,
    new_processes: Option<Spanned<String>>,
    #[serde(default)]
    allow: Vec<AllowSchema>,
    #[serde(default)]
    rule: Vec<RuleSchema>,
    #[serde(default)]
    remove: Vec<RemoveSchema>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ErrnoSchema {
    Name(String),
    Number(i64),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowSchema {
    why: String,
    #[serde(default)]
    syscalls: Vec<Spanned<String>>,
    #[serde(default)]
    x86_64: Vec<Spanned<String>>,
    #[serde(default)]
    aarch64: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSchema {
    why: Spanned<String>,
    syscalls: Vec<Spanned<String>>,
    action: Option<Spanned<String>>,
    errno: Option<Spanned<ErrnoSchema>>,
    arch: Option<Spanned<String>>,
    #[serde(default)]
    args: Vec<Spanned<ArgSchema>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArgSchema {
    index: i64,
    op: String,
    value: i64,
    mask: Option<i64>,
    width: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveSchema {
    #[allow(dead_code)]
    why: String,
    syscalls: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LandlockSchema {
    enabled: Option<bool>,
    minimum_abi: Option<Spanned<i64>>,
    best_effort: Option<bool>,
    tcp_bind: Option<Vec<Spanned<i64>>>,
    tcp_connect: Option<Vec<Spanned<i64>>>,
    scope: Option<Vec<Spanned<String>>>,
    inherit_paths: Option<bool>,
    #[serde(default)]
    path: Vec<PathSchema>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PathSchema {
    path: Spanned<String>,
    access: Vec<Spanned<String>>,
    why: String,
}

/// One profile file, validated, before its `extends` chain is merged.
#[derive(Debug, Clone, Default)]
pub struct Layer {
    pub extends: Option<(String, Location)>,
    pub seccomp: Option<SeccompLayer>,
    pub landlock: Option<LandlockLayer>,
}

#[derive(Debug, Clone, Default)]
pub struct SeccompLayer {
    pub enabled: Option<bool>,
    pub default_kind: Option<Action>,
    pub default_errno: Option<u32>,
    pub new_processes: Option<NewProcesses>,
    pub rules: Vec<Rule>,
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct LandlockLayer {
    pub enabled: Option<bool>,
    pub minimum_abi: Option<u32>,
    pub best_effort: Option<bool>,
    pub tcp_bind: Option<Vec<u16>>,
    pub tcp_connect: Option<Vec<u16>>,
    pub scope: Option<Vec<ScopeKind>>,
    /// `false`: drop the extended profile's path rules.
    pub inherit_paths: Option<bool>,
    pub paths: Vec<PathRule>,
}

/// A profile with its whole `extends` chain merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub seccomp: Option<SeccompModel>,
    pub landlock: Option<LandlockModel>,
}

/// Line and column (1-based) of a byte offset.
pub fn location(file: &str, text: &str, offset: usize) -> Location {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    Location {
        file: file.to_string(),
        line,
        column: before[line_start..].chars().count() + 1,
    }
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn at(&self, span: std::ops::Range<usize>) -> Location {
        location(self.file, self.text, span.start)
    }

    fn invalid<T>(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        reason: impl Into<String>,
    ) -> Result<T, PolicyError> {
        Err(PolicyError::Invalid {
            at: self.at(span),
            key: key.to_string(),
            reason: reason.into(),
        })
    }

    fn syscall(
        &self,
        name: &Spanned<String>,
        key: &str,
        arch: Option<Arch>,
    ) -> Result<String, PolicyError> {
        let n = name.get_ref();
        let known = match arch {
            Some(a) => a.syscall(n).is_some(),
            None => seccomp::known_syscall(n),
        };
        if !known {
            let on = arch
                .map(|a| format!(" on {}", a.name()))
                .unwrap_or_default();
            return self.invalid(name.span(), key, format!("unknown syscall `{n}`{on}"));
        }
        Ok(n.clone())
    }

    fn errno(&self, e: &Spanned<ErrnoSchema>, key: &str) -> Result<u32, PolicyError> {
        match e.get_ref() {
            ErrnoSchema::Name(n) => errno::by_name(n).map_or_else(
                || self.invalid(e.span(), key, format!("unknown errno name `{n}` (hint: EPERM, ENOSYS, EACCES, ... or a number)")),
                Ok,
            ),
            ErrnoSchema::Number(n) if (1..=errno::MAX_ERRNO as i64).contains(n) => Ok(*n as u32),
            ErrnoSchema::Number(n) => self.invalid(e.span(), key, format!("errno {n} is out of range 1..={}", errno::MAX_ERRNO)),
        }
    }

    fn action(&self, a: &Spanned<String>, key: &str) -> Result<Action, PolicyError> {
        Ok(match a.get_ref().as_str() {
            "allow" => Action::Allow,
            "errno" => Action::Errno(libc::EPERM as u32),
            "kill-process" => Action::KillProcess,
            "kill-thread" => Action::KillThread,
            "trap" => Action::Trap,
            "log" => Action::Log,
            other => {
                return self.invalid(
                    a.span(),
                    key,
                    format!("unknown action `{other}` (hint: allow, errno, kill-process, kill-thread, trap, log)"),
                )
            }
        })
    }

    fn arg(&self, a: &Spanned<ArgSchema>) -> Result<Condition, PolicyError> {
        let s = a.get_ref();
        let span = a.span();
        if !(0..=5).contains(&s.index) {
            return self.invalid(
                span,
                "seccomp.rule.args.index",
                format!("{} is not an argument index 0..=5", s.index),
            );
        }
        let width = match s.width {
            None | Some(64) => Width::W64,
            Some(32) => Width::W32,
            Some(w) => {
                return self.invalid(
                    span,
                    "seccomp.rule.args.width",
                    format!("{w} is not 32 or 64"),
                )
            }
        };
        let op = match (s.op.as_str(), s.mask) {
            ("masked-eq", Some(m)) => CmpOp::MaskedEq(m as u64),
            ("masked-eq", None) => {
                return self.invalid(
                    span,
                    "seccomp.rule.args.mask",
                    "op `masked-eq` needs a `mask`",
                )
            }
            (_, Some(_)) => {
                return self.invalid(
                    span,
                    "seccomp.rule.args.mask",
                    "`mask` goes only with op `masked-eq`",
                )
            }
            ("eq", None) => CmpOp::Eq,
            ("ne", None) => CmpOp::Ne,
            ("lt", None) => CmpOp::Lt,
            ("le", None) => CmpOp::Le,
            ("gt", None) => CmpOp::Gt,
            ("ge", None) => CmpOp::Ge,
            (other, None) => {
                return self.invalid(
                    span,
                    "seccomp.rule.args.op",
                    format!("unknown operator `{other}` (hint: eq, ne, lt, le, gt, ge, masked-eq)"),
                )
            }
        };
        // TOML integers are signed 64-bit; negative values stand for their
        // two's complement (-1 is all ones).
        let value = s.value as u64;
        if width == Width::W32 && value > u64::from(u32::MAX) {
            return self.invalid(
                span,
                "seccomp.rule.args.value",
                format!("{value:#x} does not fit in 32 bits"),
            );
        }
        Ok(Condition {
            index: s.index as u8,
            op,
            value,
            width,
        })
    }

    fn port(&self, p: &Spanned<i64>, key: &str) -> Result<u16, PolicyError> {
        u16::try_from(*p.get_ref()).or_else(|_| {
            self.invalid(
                p.span(),
                key,
                format!("{} is not a port 0..=65535", p.get_ref()),
            )
        })
    }
}

/// Parse and validate one profile file. Does not follow `extends`.
pub fn parse(text: &str, file: &str) -> Result<Layer, PolicyError> {
    if text.len() > MAX_PROFILE_BYTES {
        return Err(PolicyError::TooLarge {
            file: file.to_string(),
            size: text.len(),
            max: MAX_PROFILE_BYTES,
        });
    }
    let cx = Ctx { file, text };
    let schema: FileSchema = toml::from_str(text).map_err(|e| PolicyError::Syntax {
        at: location(file, text, e.span().map(|s| s.start).unwrap_or(0)),
        message: e.message().trim().to_string(),
    })?;
    let extends = schema
        .extends
        .map(|e| (e.get_ref().clone(), cx.at(e.span())));
    let seccomp = schema.seccomp.map(|s| seccomp_layer(&cx, s)).transpose()?;
    let landlock = schema
        .landlock
        .map(|l| landlock_layer(&cx, l))
        .transpose()?;
    Ok(Layer {
        extends,
        seccomp,
        landlock,
    })
}

fn seccomp_layer(cx: &Ctx, s: SeccompSchema) -> Result<SeccompLayer, PolicyError> {
    let mut layer = SeccompLayer {
        enabled: s.enabled,
        ..SeccompLayer::default()
    };
    if let Some(a) = &s.default_action {
        layer.default_kind = Some(cx.action(a, "seccomp.default_action")?);
    }
    if let Some(e) = &s.default_errno {
        layer.default_errno = Some(cx.errno(e, "seccomp.default_errno")?);
    }
    if let Some(n) = &s.new_processes {
        layer.new_processes = Some(match n.get_ref().as_str() {
            "any" => NewProcesses::Any,
            "threads" => NewProcesses::Threads,
            "none" => NewProcesses::None,
            other => {
                return cx.invalid(
                    n.span(),
                    "seccomp.new_processes",
                    format!("unknown value `{other}` (hint: any, threads, none)"),
                )
            }
        });
    }
    for group in s.allow {
        let mut push =
            |names: &[Spanned<String>], arch: Option<Arch>, key: &str| -> Result<(), PolicyError> {
                if names.is_empty() {
                    return Ok(());
                }
                let syscalls = names
                    .iter()
                    .map(|n| cx.syscall(n, key, arch))
                    .collect::<Result<Vec<_>, _>>()?;
                layer.rules.push(Rule {
                    syscalls,
                    arch,
                    action: Action::Allow,
                    conditions: Vec::new(),
                    why: group.why.clone(),
                });
                Ok(())
            };
        push(&group.syscalls, None, "seccomp.allow.syscalls")?;
        push(&group.x86_64, Some(Arch::X86_64), "seccomp.allow.x86_64")?;
        push(&group.aarch64, Some(Arch::Aarch64), "seccomp.allow.aarch64")?;
    }
    for r in s.rule {
        let arch = match &r.arch {
            None => None,
            Some(a) => Some(Arch::from_name(a.get_ref()).map_or_else(
                || {
                    cx.invalid(
                        a.span(),
                        "seccomp.rule.arch",
                        format!(
                            "unknown architecture `{}` (hint: x86_64, aarch64)",
                            a.get_ref()
                        ),
                    )
                },
                Ok,
            )?),
        };
        let mut action = match &r.action {
            Some(a) => cx.action(a, "seccomp.rule.action")?,
            None => Action::Allow,
        };
        match (&r.errno, action) {
            (Some(e), Action::Errno(_)) => {
                action = Action::Errno(cx.errno(e, "seccomp.rule.errno")?)
            }
            (Some(e), _) => {
                return cx.invalid(
                    e.span(),
                    "seccomp.rule.errno",
                    "`errno` goes only with action = \"errno\"",
                )
            }
            _ => {}
        }
        if r.syscalls.is_empty() {
            return cx.invalid(
                r.why.span(),
                "seccomp.rule.syscalls",
                "the rule names no syscall",
            );
        }
        let syscalls = r
            .syscalls
            .iter()
            .map(|n| cx.syscall(n, "seccomp.rule.syscalls", arch))
            .collect::<Result<Vec<_>, _>>()?;
        let conditions = r
            .args
            .iter()
            .map(|a| cx.arg(a))
            .collect::<Result<Vec<_>, _>>()?;
        layer.rules.push(Rule {
            syscalls,
            arch,
            action,
            conditions,
            why: r.why.into_inner(),
        });
    }
    for rm in s.remove {
        for n in &rm.syscalls {
            layer
                .remove
                .push(cx.syscall(n, "seccomp.remove.syscalls", None)?);
        }
    }
    Ok(layer)
}

fn landlock_layer(cx: &Ctx, l: LandlockSchema) -> Result<LandlockLayer, PolicyError> {
    let mut layer = LandlockLayer {
        enabled: l.enabled,
        best_effort: l.best_effort,
        inherit_paths: l.inherit_paths,
        ..LandlockLayer::default()
    };
    if let Some(abi) = &l.minimum_abi {
        let v = *abi.get_ref();
        if !(1..=1000).contains(&v) {
            return cx.invalid(
                abi.span(),
                "landlock.minimum_abi",
                format!("{v} is not an ABI version (1, 2, ...)"),
            );
        }
        layer.minimum_abi = Some(v as u32);
    }
    let ports =
        |list: &Option<Vec<Spanned<i64>>>, key: &str| -> Result<Option<Vec<u16>>, PolicyError> {
            list.as_ref()
                .map(|l| l.iter().map(|p| cx.port(p, key)).collect())
                .transpose()
        };
    layer.tcp_bind = ports(&l.tcp_bind, "landlock.tcp_bind")?;
    layer.tcp_connect = ports(&l.tcp_connect, "landlock.tcp_connect")?;
    if let Some(scope) = &l.scope {
        let mut kinds = Vec::new();
        for s in scope {
            let kind = ScopeKind::ALL.into_iter().find(|k| k.name() == s.get_ref());
            match kind {
                Some(k) if !kinds.contains(&k) => kinds.push(k),
                Some(_) => {}
                None => {
                    return cx.invalid(
                        s.span(),
                        "landlock.scope",
                        format!(
                            "unknown scope `{}` (hint: abstract-unix-socket, signal)",
                            s.get_ref()
                        ),
                    )
                }
            }
        }
        layer.scope = Some(kinds);
    }
    for p in l.path {
        let raw = p.path.get_ref();
        let target = match raw.as_str() {
            "@writable" => Target::Writable,
            "@mounts" => Target::Mounts,
            s if s.starts_with('/') && !s.split('/').any(|c| c == "..") => {
                Target::Path(PathBuf::from(s))
            }
            s => {
                return cx.invalid(
                    p.path.span(),
                    "landlock.path.path",
                    format!("`{s}` is not an absolute path without `..`, @writable or @mounts"),
                )
            }
        };
        let mut access = Vec::new();
        for a in &p.access {
            let Some(rights) = landlock::rights(a.get_ref()) else {
                return cx.invalid(
                    a.span(),
                    "landlock.path.access",
                    format!("unknown access right `{}` (hint: read, write, execute, make-dir, remove, truncate, ioctl-dev, all; see policies/README.md)", a.get_ref()),
                );
            };
            for r in rights {
                if !access.contains(&r) {
                    access.push(r);
                }
            }
        }
        layer.paths.push(PathRule {
            target,
            access,
            why: p.why,
        });
    }
    Ok(layer)
}

/// Merge `layer` over `base` (the profile it extends, or nothing).
pub fn merge(base: Profile, layer: Layer) -> Profile {
    let seccomp = match layer.seccomp {
        None => base.seccomp,
        Some(l) if l.enabled == Some(false) => None,
        Some(l) => {
            let mut m = base.seccomp.unwrap_or(SeccompModel {
                default_action: Action::Errno(libc::EPERM as u32),
                rules: Vec::new(),
                new_processes: NewProcesses::Any,
            });
            if !l.remove.is_empty() {
                m.rules = m
                    .rules
                    .into_iter()
                    .filter_map(|mut r| {
                        r.syscalls.retain(|s| !l.remove.contains(s));
                        (!r.syscalls.is_empty()).then_some(r)
                    })
                    .collect();
            }
            if let Some(kind) = l.default_kind {
                m.default_action = kind;
            }
            if let (Some(e), Action::Errno(_)) = (l.default_errno, m.default_action) {
                m.default_action = Action::Errno(e);
            }
            if let Some(n) = l.new_processes {
                m.new_processes = n;
            }
            m.rules.extend(l.rules);
            Some(m)
        }
    };
    let landlock = match layer.landlock {
        None => base.landlock,
        Some(l) if l.enabled == Some(false) => None,
        Some(l) => {
            let mut m = base.landlock.unwrap_or_default();
            if let Some(v) = l.minimum_abi {
                m.minimum_abi = v;
            }
            if let Some(v) = l.best_effort {
                m.best_effort = v;
            }
            if l.tcp_bind.is_some() {
                m.tcp_bind = l.tcp_bind;
            }
            if l.tcp_connect.is_some() {
                m.tcp_connect = l.tcp_connect;
            }
            if let Some(s) = l.scope {
                m.scope = s;
            }
            if l.inherit_paths == Some(false) {
                m.paths.clear();
            }
            m.paths.extend(l.paths);
            Some(m)
        }
    };
    Profile { seccomp, landlock }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let e = parse("[seccomp]\ndefault_action = \n", "p.toml").unwrap_err();
        let PolicyError::Syntax { at, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!((at.line, at.file.as_str()), (2, "p.toml"), "{e}");
    }

    #[test]
    fn unknown_keys_are_named_where_they_are() {
        let e = parse("[landlock]\nminimum_abi = 1\nbest_efort = true\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.toml:3:1:"), "{e}");
        assert!(e.contains("best_efort"), "{e}");
    }

    #[test]
    fn unknown_syscalls_are_named() {
        let text = "[[seccomp.allow]]\nwhy = \"x\"\nsyscalls = [\"read\", \"frobnicate\"]\n";
        let e = parse(text, "p.toml").unwrap_err().to_string();
        assert!(e.starts_with("p.toml:3:21:"), "{e}");
        assert!(e.contains("unknown syscall `frobnicate`"), "{e}");
    }

    #[test]
    fn bad_values_are_located() {
        let text = "[[seccomp.rule]]\nwhy = \"x\"\nsyscalls = [\"ioctl\"]\nargs = [{ index = 9, op = \"eq\", value = 1 }]\n";
        let e = parse(text, "p.toml").unwrap_err().to_string();
        assert!(e.starts_with("p.toml:4:"), "{e}");
        assert!(e.contains("argument index"), "{e}");
    }

    #[test]
    fn too_large_is_refused() {
        let text = "#".repeat(MAX_PROFILE_BYTES + 1);
        assert!(matches!(
            parse(&text, "big.toml"),
            Err(PolicyError::TooLarge { .. })
        ));
    }

    #[test]
    fn merge_tightens_and_loosens() {
        let base = merge(
            Profile::default(),
            parse(
                "[seccomp]\n[[seccomp.allow]]\nwhy = \"a\"\nsyscalls = [\"read\", \"write\", \"mount\"]\n",
                "a",
            )
            .unwrap(),
        );
        let child = parse(
            "[seccomp]\ndefault_errno = \"ENOSYS\"\n[[seccomp.remove]]\nwhy = \"b\"\nsyscalls = [\"mount\"]\n[[seccomp.allow]]\nwhy = \"c\"\nsyscalls = [\"getpid\"]\n",
            "b",
        )
        .unwrap();
        let m = merge(base, child).seccomp.unwrap();
        assert_eq!(m.default_action, Action::Errno(libc::ENOSYS as u32));
        let names: Vec<&str> = m
            .rules
            .iter()
            .flat_map(|r| r.syscalls.iter().map(String::as_str))
            .collect();
        assert_eq!(names, vec!["read", "write", "getpid"]);
    }
}
