//! Seccomp: the resolved rule model every profile source (hutch's TOML,
//! Docker/OCI JSON) turns into, its compilation to BPF with `seccompiler`,
//! and installing the compiled programs.
//!
//! seccompiler builds filters with one "match" action and one "mismatch"
//! action. A profile has an allowlist under a default action plus rules
//! with their own actions (`clone3` -> ENOSYS, ...), so one profile becomes
//! several stacked filters: one per distinct rule action (returning that
//! action when a rule matches, allow otherwise) and the allowlist filter
//! (allow, else the default action). Syscalls that an action rule matches
//! are allowed by the allowlist filter under the same conditions, so the
//! kernel's precedence (kill > trap > errno > log > allow, over every
//! installed filter) gives exactly: a matching action rule wins, else the
//! allowlist, else the default action.

use std::collections::BTreeMap;

use serde::Serialize;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

use super::syscalls;

/// The architectures hutch has syscall tables for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    /// The architecture hutch was built for.
    pub fn host() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    pub fn from_name(name: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.name() == name)
    }

    fn table(self) -> &'static [(&'static str, i64)] {
        match self {
            Arch::X86_64 => syscalls::X86_64,
            Arch::Aarch64 => syscalls::AARCH64,
        }
    }

    /// The syscall's number on this architecture.
    pub fn syscall(self, name: &str) -> Option<i64> {
        let t = self.table();
        t.binary_search_by(|(n, _)| (*n).cmp(name))
            .ok()
            .map(|i| t[i].1)
    }

    /// The AUDIT_ARCH value seccomp_data.arch holds for this architecture.
    pub fn audit(self) -> u32 {
        match self {
            Arch::X86_64 => 0xc000_003e,
            Arch::Aarch64 => 0xc000_00b7,
        }
    }

    fn target(self) -> TargetArch {
        match self {
            Arch::X86_64 => TargetArch::x86_64,
            Arch::Aarch64 => TargetArch::aarch64,
        }
    }
}

/// Whether any supported architecture has a syscall of this name.
pub fn known_syscall(name: &str) -> bool {
    Arch::ALL.iter().any(|a| a.syscall(name).is_some())
}

/// What the kernel does with a syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Action {
    Allow,
    Errno(u32),
    KillProcess,
    KillThread,
    Trap,
    Log,
}

impl Action {
    fn seccompiler(self) -> SeccompAction {
        match self {
            Action::Allow => SeccompAction::Allow,
            Action::Errno(e) => SeccompAction::Errno(e),
            Action::KillProcess => SeccompAction::KillProcess,
            Action::KillThread => SeccompAction::KillThread,
            Action::Trap => SeccompAction::Trap,
            Action::Log => SeccompAction::Log,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Allow => write!(f, "allow"),
            Action::Errno(e) => write!(f, "errno {}", super::errno::name(*e)),
            Action::KillProcess => write!(f, "kill-process"),
            Action::KillThread => write!(f, "kill-thread"),
            Action::Trap => write!(f, "trap"),
            Action::Log => write!(f, "log"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `(arg & mask) == value`
    MaskedEq(u64),
}

/// How much of the argument register is compared. Arguments the kernel
/// takes as `int` or `unsigned int` must be compared on 32 bits: the
/// kernel ignores the upper half, so a 64-bit "not equal" could be
/// bypassed by setting a high bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Width {
    W32,
    W64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Condition {
    pub index: u8,
    pub op: CmpOp,
    pub value: u64,
    pub width: Width,
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = match self.width {
            Width::W32 => "u32",
            Width::W64 => "u64",
        };
        let (op, v) = match self.op {
            CmpOp::Eq => ("==", format!("{:#x}", self.value)),
            CmpOp::Ne => ("!=", format!("{:#x}", self.value)),
            CmpOp::Lt => ("<", format!("{:#x}", self.value)),
            CmpOp::Le => ("<=", format!("{:#x}", self.value)),
            CmpOp::Gt => (">", format!("{:#x}", self.value)),
            CmpOp::Ge => (">=", format!("{:#x}", self.value)),
            CmpOp::MaskedEq(m) => {
                return write!(f, "({w})arg{} & {m:#x} == {:#x}", self.index, self.value)
            }
        };
        write!(f, "({w})arg{} {op} {v}", self.index)
    }
}

/// One rule: when a call to one of `syscalls` satisfies every condition,
/// the kernel takes `action`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub syscalls: Vec<String>,
    /// Only on this architecture (names that exist only there).
    pub arch: Option<Arch>,
    pub action: Action,
    pub conditions: Vec<Condition>,
    pub why: String,
}

/// Which new processes and threads the workload may create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NewProcesses {
    /// As the rules say.
    Any,
    /// Threads only: `clone` must carry CLONE_THREAD; fork and vfork refused.
    Threads,
    /// Neither: clone, fork and vfork refused.
    None,
}

impl NewProcesses {
    pub fn name(self) -> &'static str {
        match self {
            NewProcesses::Any => "any",
            NewProcesses::Threads => "threads",
            NewProcesses::None => "none",
        }
    }
}

/// A fully resolved seccomp profile, ready to compile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeccompModel {
    pub default_action: Action,
    pub rules: Vec<Rule>,
    pub new_processes: NewProcesses,
}

/// The namespace flags of clone(2): Docker's mask (NEWNS, NEWCGROUP,
/// NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET) plus CLONE_NEWTIME.
pub const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0080;
const CLONE_THREAD: u64 = libc::CLONE_THREAD as u64;
const PROCESS_SYSCALLS: [&str; 3] = ["clone", "fork", "vfork"];

impl SeccompModel {
    /// Whether a workload under this model may open an IPv4 or IPv6
    /// socket, or one of a family carried over them (AF_SMC falls back to
    /// TCP, AF_RDS runs over it). Conservative: yes unless the default
    /// action refuses calls and every rule that lets one through either
    /// names none of the ways to a socket or pins `socket`'s family
    /// (argument 0, which the kernel reads as an int) to a local one:
    /// AF_UNIX, AF_NETLINK or AF_ALG. `socketcall` and io_uring (which
    /// opens sockets beside seccomp) count as ways whatever their
    /// arguments. A wrong "yes" only costs bringing up a loopback nothing
    /// uses; a wrong "no" only leaves it down.
    pub fn allows_inet_sockets(&self) -> bool {
        let passes = |a: Action| matches!(a, Action::Allow | Action::Log);
        if passes(self.default_action) {
            return true;
        }
        const LOCAL_FAMILIES: [i32; 3] = [libc::AF_UNIX, libc::AF_NETLINK, libc::AF_ALG];
        let pins_local_family = |conds: &[Condition]| {
            conds.iter().any(|c| {
                let family = (c.value & 0xffff_ffff) as i32;
                c.index == 0 && c.op == CmpOp::Eq && LOCAL_FAMILIES.contains(&family)
            })
        };
        self.effective_rules().iter().any(|r| {
            passes(r.action)
                && r.syscalls.iter().any(|s| match s.as_str() {
                    "socket" => !pins_local_family(&r.conditions),
                    "socketcall" | "io_uring_setup" => true,
                    _ => false,
                })
        })
    }

    /// The rules after `new_processes` has had its say.
    pub fn effective_rules(&self) -> Vec<Rule> {
        if self.new_processes == NewProcesses::Any {
            return self.rules.clone();
        }
        let mut rules: Vec<Rule> = self
            .rules
            .iter()
            .filter_map(|r| {
                let mut r = r.clone();
                r.syscalls
                    .retain(|s| !PROCESS_SYSCALLS.contains(&s.as_str()));
                (!r.syscalls.is_empty()).then_some(r)
            })
            .collect();
        if self.new_processes == NewProcesses::Threads {
            rules.push(Rule {
                syscalls: vec!["clone".into()],
                arch: None,
                action: Action::Allow,
                conditions: vec![
                    Condition {
                        index: 0,
                        op: CmpOp::MaskedEq(CLONE_THREAD),
                        value: CLONE_THREAD,
                        width: Width::W64,
                    },
                    Condition {
                        index: 0,
                        op: CmpOp::MaskedEq(CLONE_NAMESPACE_FLAGS),
                        value: 0,
                        width: Width::W64,
                    },
                ],
                why: "new_processes = \"threads\": clone only with CLONE_THREAD and no namespace flags"
                    .into(),
            });
        }
        rules
    }
}

/// The compiled filters, in the order they are installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    pub programs: Vec<BpfProgram>,
}

/// A container's record carries the filter it was created with to its
/// supervisor and to `exec`: each program as one hex string, sixteen digits
/// an instruction (code, jt, jf and k, big-endian), written and read in one
/// pass where the former `[code, jt, jf, k]` arrays cost serde a number and
/// three separators each (a judge writes one record per run). Records in
/// that former form are still read.
impl serde::Serialize for Compiled {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.programs.len()))?;
        for p in &self.programs {
            seq.serialize_element(&program_hex(p))?;
        }
        seq.end()
    }
}

/// The kernel's bound on a classic BPF program (BPF_MAXINSNS): a program
/// longer than that is refused when read from a record or the cache, and
/// never built.
pub const MAX_INSNS: usize = 4096;

fn program_hex(p: &[sock_filter]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(p.len() * 16);
    for i in p {
        let _ = write!(out, "{:04x}{:02x}{:02x}{:08x}", i.code, i.jt, i.jf, i.k);
    }
    out
}

fn program_from_hex(text: &str) -> Option<BpfProgram> {
    if !text.bytes().all(|b| b.is_ascii_hexdigit())
        || text.len() % 16 != 0
        || text.len() / 16 > MAX_INSNS
    {
        return None;
    }
    let field = |i: usize, from: usize, to: usize| {
        u32::from_str_radix(&text[i * 16 + from..i * 16 + to], 16).ok()
    };
    (0..text.len() / 16)
        .map(|i| {
            Some(sock_filter {
                code: field(i, 0, 4)? as u16,
                jt: field(i, 4, 6)? as u8,
                jf: field(i, 6, 8)? as u8,
                k: field(i, 8, 16)?,
            })
        })
        .collect()
}

/// One program of a record: a hex string, or the former array of
/// `[code, jt, jf, k]`.
struct StoredProgram(BpfProgram);

impl<'de> serde::Deserialize<'de> for StoredProgram {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<StoredProgram, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = StoredProgram;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a seccomp program: hex instructions or [code, jt, jf, k] arrays")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StoredProgram, E> {
                program_from_hex(v).map(StoredProgram).ok_or_else(|| {
                    E::custom("a seccomp program that is not whole hex instructions")
                })
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<StoredProgram, A::Error> {
                use serde::de::Error;
                let mut p = Vec::new();
                while let Some([code, jt, jf, k]) = seq.next_element::<[u32; 4]>()? {
                    if p.len() == MAX_INSNS {
                        return Err(A::Error::custom("a seccomp program over 4096 instructions"));
                    }
                    p.push(sock_filter {
                        code: u16::try_from(code).map_err(A::Error::custom)?,
                        jt: u8::try_from(jt).map_err(A::Error::custom)?,
                        jf: u8::try_from(jf).map_err(A::Error::custom)?,
                        k,
                    });
                }
                Ok(StoredProgram(p))
            }
        }
        d.deserialize_any(Visit)
    }
}

impl<'de> serde::Deserialize<'de> for Compiled {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Compiled, D::Error> {
        let v: Vec<StoredProgram> = serde::Deserialize::deserialize(d)?;
        Ok(Compiled {
            programs: v.into_iter().map(|p| p.0).collect(),
        })
    }
}

#[derive(Default)]
struct Chains(BTreeMap<i64, Option<Vec<SeccompRule>>>);

impl Chains {
    /// `None` conditions: the syscall matches unconditionally.
    fn add(&mut self, nr: i64, rule: Option<SeccompRule>) {
        let entry = self.0.entry(nr).or_insert_with(|| Some(Vec::new()));
        match (entry.as_mut(), rule) {
            (None, _) => {}
            (Some(_), None) => *entry = None,
            (Some(v), Some(r)) => v.push(r),
        }
    }

    fn into_map(self) -> BTreeMap<i64, Vec<SeccompRule>> {
        self.0
            .into_iter()
            .map(|(nr, c)| (nr, c.unwrap_or_default()))
            .collect()
    }
}

fn seccompiler_rule(conds: &[Condition]) -> Result<Option<SeccompRule>, String> {
    if conds.is_empty() {
        return Ok(None);
    }
    let conds = conds
        .iter()
        .map(|c| {
            let len = match c.width {
                Width::W32 => SeccompCmpArgLen::Dword,
                Width::W64 => SeccompCmpArgLen::Qword,
            };
            let op = match c.op {
                CmpOp::Eq => SeccompCmpOp::Eq,
                CmpOp::Ne => SeccompCmpOp::Ne,
                CmpOp::Lt => SeccompCmpOp::Lt,
                CmpOp::Le => SeccompCmpOp::Le,
                CmpOp::Gt => SeccompCmpOp::Gt,
                CmpOp::Ge => SeccompCmpOp::Ge,
                CmpOp::MaskedEq(m) => SeccompCmpOp::MaskedEq(m),
            };
            SeccompCondition::new(c.index, len, op, c.value).map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    SeccompRule::new(conds).map(Some).map_err(|e| e.to_string())
}

/// Compile the model for `arch`. Names the architecture lacks are skipped
/// (a profile lists names for every architecture it supports).
/// The programs are merged into one that finds the syscall number by
/// binary search ([`super::bpf_tree`]) when that is proven to answer as
/// they do together.
pub fn compile(model: &SeccompModel, arch: Arch) -> Result<Compiled, String> {
    let mut c = compile_with(model, arch, true)?;
    if let Some(merged) = super::bpf_tree::merge(&c.programs, arch.audit()) {
        c.programs = vec![merged];
    }
    Ok(c)
}

/// [`compile`], with seccompiler's output shrunk by [`super::bpf_opt`] or
/// (for comparing the two) as it is.
pub fn compile_with(model: &SeccompModel, arch: Arch, optimize: bool) -> Result<Compiled, String> {
    let mut allow = Chains::default();
    let mut by_action: BTreeMap<Action, Chains> = BTreeMap::new();
    for rule in model.effective_rules() {
        if rule.arch.is_some_and(|a| a != arch) {
            continue;
        }
        let compiled = seccompiler_rule(&rule.conditions)?;
        for nr in rule.syscalls.iter().filter_map(|s| arch.syscall(s)) {
            allow.add(nr, compiled.clone());
            if rule.action != Action::Allow {
                by_action
                    .entry(rule.action)
                    .or_default()
                    .add(nr, compiled.clone());
            }
        }
    }
    let seccomp_nr = arch.syscall("seccomp");
    let mut first = Vec::new();
    let mut last = Vec::new();
    for (action, chains) in by_action {
        let touches_seccomp = seccomp_nr.is_some_and(|nr| chains.0.contains_key(&nr));
        let filter = SeccompFilter::new(
            chains.into_map(),
            SeccompAction::Allow,
            action.seccompiler(),
            arch.target(),
        )
        .map_err(|e| e.to_string())?;
        if touches_seccomp {
            last.push(filter);
        } else {
            first.push(filter);
        }
    }
    // Each filter after the first is installed by a seccomp(2) call that
    // the filters already installed must let through.
    if last.len() > 1 {
        return Err(
            "rules with different actions name `seccomp`; give it at most one action".into(),
        );
    }
    if model.default_action != Action::Allow {
        first.push(
            SeccompFilter::new(
                allow.into_map(),
                model.default_action.seccompiler(),
                SeccompAction::Allow,
                arch.target(),
            )
            .map_err(|e| e.to_string())?,
        );
    }
    let mut programs = Vec::new();
    if arch == Arch::X86_64 {
        programs.push(x32_guard());
    }
    for f in first.into_iter().chain(last) {
        let p = BpfProgram::try_from(f).map_err(|e| e.to_string())?;
        let p = match optimize {
            true => super::bpf_opt::optimize(&p).unwrap_or(p),
            false => p,
        };
        programs.push(p);
    }
    Ok(Compiled { programs })
}

/// x32 syscalls share AUDIT_ARCH_X86_64 with their own numbers (bit 30
/// set). seccompiler matches exact numbers, so an allowlist already refuses
/// them, but a denylist (default action allow, as some Docker JSON
/// profiles) would let `mount` through as x32 `mount`. This fixed guard
/// answers every x32 syscall with ENOSYS, whatever the profile.
pub fn x32_guard() -> BpfProgram {
    const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    let stmt = |code: u32, k: u32| sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code: u32, k: u32, jt: u8, jf: u8| sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let ld_abs = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    vec![
        // seccomp_data.arch
        stmt(ld_abs, 4),
        // another architecture: not this guard's business
        jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            AUDIT_ARCH_X86_64,
            0,
            3,
        ),
        // seccomp_data.nr
        stmt(ld_abs, 0),
        jump(
            libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K,
            X32_SYSCALL_BIT,
            0,
            1,
        ),
        stmt(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        ),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ]
}

/// Install the compiled filters on the calling thread. no_new_privs must
/// already be set. Allocates nothing: this runs right before execve.
pub fn install(compiled: &Compiled) -> Result<(), std::io::Error> {
    for prog in &compiled.programs {
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: seccompiler's sock_filter is #[repr(C)] with the kernel's
        // layout; the kernel copies the program during the call and `prog`
        // outlives it.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &fprog as *const libc::sock_fprog,
            )
        };
        if ret != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_holds_programs_as_hex_and_reads_the_former_arrays() {
        let insn = |code, jt, jf, k| sock_filter { code, jt, jf, k };
        let c = Compiled {
            programs: vec![
                vec![insn(0x20, 0, 0, 4), insn(0x15, 1, 0xff, 0xc000_003e)],
                vec![insn(0x06, 0, 0, 0x7fff_0000)],
            ],
        };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"["0020000000000004001501ffc000003e","000600007fff0000"]"#
        );
        assert_eq!(serde_json::from_str::<Compiled>(&json).unwrap(), c);
        // A record written before: arrays of [code, jt, jf, k].
        let former = r#"[[[32,0,0,4],[21,1,255,3221225534]],[[6,0,0,2147418112]]]"#;
        assert_eq!(serde_json::from_str::<Compiled>(former).unwrap(), c);
        // Anything else is refused, not read as some other program.
        for bad in [
            r#"["0020000000000004001"]"#,
            r#"["+020000000000004"]"#,
            r#"["002000000000000g"]"#,
            r#"[[[65536,0,0,0]]]"#,
            r#"[7]"#,
        ] {
            assert!(serde_json::from_str::<Compiled>(bad).is_err(), "{bad}");
        }
        let too_long = format!(r#"["{}"]"#, "0006000000000000".repeat(MAX_INSNS + 1));
        assert!(serde_json::from_str::<Compiled>(&too_long).is_err());
        let longest = format!(r#"["{}"]"#, "0006000000000000".repeat(MAX_INSNS));
        assert!(serde_json::from_str::<Compiled>(&longest).is_ok());
    }

    #[test]
    fn tables_are_sorted_and_differ_per_arch() {
        for arch in Arch::ALL {
            let t = arch.table();
            assert!(t.windows(2).all(|w| w[0].0 < w[1].0), "{arch:?} unsorted");
        }
        assert_eq!(Arch::X86_64.syscall("read"), Some(0));
        assert_eq!(Arch::Aarch64.syscall("read"), Some(63));
        assert_eq!(Arch::Aarch64.syscall("open"), None);
        assert_eq!(Arch::X86_64.syscall("clone3"), Some(435));
        #[cfg(target_arch = "x86_64")]
        assert_eq!(Arch::X86_64.syscall("mount"), Some(libc::SYS_mount));
    }

    #[test]
    fn inet_sockets_are_allowed_unless_every_way_to_one_is_shut() {
        let rule = |name: &str, action, conditions| Rule {
            syscalls: vec![name.into()],
            arch: None,
            action,
            conditions,
            why: String::new(),
        };
        let family = |value, width| Condition {
            index: 0,
            op: CmpOp::Eq,
            value,
            width,
        };
        let model = |default_action, rules| SeccompModel {
            default_action,
            rules,
            new_processes: NewProcesses::Any,
        };
        let unix_only = rule("socket", Action::Allow, vec![family(1, Width::W32)]);
        assert!(!model(Action::Errno(1), vec![unix_only.clone()]).allows_inet_sockets());
        assert!(!model(Action::KillProcess, vec![]).allows_inet_sockets());
        for open in [
            // Every call passes, or is only logged.
            model(Action::Allow, vec![]),
            model(Action::Log, vec![unix_only.clone()]),
            // A socket of any family, of AF_INET6, or of AF_SMC (which
            // falls back to TCP).
            model(
                Action::Errno(1),
                vec![rule("socket", Action::Allow, vec![])],
            ),
            model(
                Action::Errno(1),
                vec![rule("socket", Action::Allow, vec![family(10, Width::W32)])],
            ),
            model(
                Action::Errno(1),
                vec![rule("socket", Action::Allow, vec![family(43, Width::W32)])],
            ),
            // A rule for another architecture counts all the same.
            model(
                Action::Errno(1),
                vec![Rule {
                    arch: Some(Arch::Aarch64),
                    ..rule("socket", Action::Allow, vec![])
                }],
            ),
            // The kernel reads the family as an int: upper bits do not help.
            model(
                Action::Errno(1),
                vec![rule(
                    "socket",
                    Action::Log,
                    vec![family((1 << 32) | 2, Width::W64)],
                )],
            ),
            // One rule shut, another open.
            model(
                Action::Errno(1),
                vec![unix_only.clone(), rule("socket", Action::Allow, vec![])],
            ),
            // Ways to a socket beside socket(2).
            model(
                Action::Errno(1),
                vec![rule("socketcall", Action::Allow, vec![])],
            ),
            model(
                Action::Errno(1),
                vec![rule("io_uring_setup", Action::Allow, vec![])],
            ),
        ] {
            assert!(open.allows_inet_sockets(), "{open:?}");
        }
        // Rules that refuse sockets open nothing, and netlink is local.
        let refused = [Action::Errno(1), Action::KillProcess, Action::Trap]
            .map(|a| rule("socket", a, vec![]));
        let netlink = rule("socket", Action::Allow, vec![family(16, Width::W64)]);
        let rules = [refused.to_vec(), vec![unix_only, netlink]].concat();
        assert!(!model(Action::Errno(1), rules).allows_inet_sockets());
    }

    #[test]
    fn compiles_action_filters_before_the_allowlist() {
        let model = SeccompModel {
            default_action: Action::Errno(1),
            rules: vec![
                Rule {
                    syscalls: vec!["read".into(), "write".into()],
                    arch: None,
                    action: Action::Allow,
                    conditions: vec![],
                    why: String::new(),
                },
                Rule {
                    syscalls: vec!["clone3".into()],
                    arch: None,
                    action: Action::Errno(38),
                    conditions: vec![],
                    why: String::new(),
                },
            ],
            new_processes: NewProcesses::Any,
        };
        let c = compile_with(&model, Arch::Aarch64, true).unwrap();
        assert_eq!(c.programs.len(), 2);
        // x86_64 adds the x32 guard first.
        let c = compile_with(&model, Arch::X86_64, true).unwrap();
        assert_eq!(c.programs.len(), 3);
        assert_eq!(c.programs[0], x32_guard());
        // Installed, they are one program.
        assert_eq!(compile(&model, Arch::X86_64).unwrap().programs.len(), 1);
    }

    #[test]
    fn x32_guard_jumps_land_on_returns() {
        let g = x32_guard();
        for (i, insn) in g.iter().enumerate() {
            if insn.code as u32 & 0x07 == libc::BPF_JMP {
                for off in [insn.jt, insn.jf] {
                    let target = &g[i + 1 + off as usize];
                    assert!(
                        target.code as u32 & 0x07 == libc::BPF_RET
                            || target.code as u32 & 0x07 == libc::BPF_LD,
                        "jump from {i} lands on {target:?}"
                    );
                }
            }
        }
        assert_eq!(g.last().unwrap().k, libc::SECCOMP_RET_ALLOW);
    }

    #[test]
    fn threads_only_replaces_process_rules() {
        let model = SeccompModel {
            default_action: Action::Errno(1),
            rules: vec![Rule {
                syscalls: vec!["clone".into(), "fork".into(), "read".into()],
                arch: None,
                action: Action::Allow,
                conditions: vec![],
                why: String::new(),
            }],
            new_processes: NewProcesses::Threads,
        };
        let rules = model.effective_rules();
        assert_eq!(rules[0].syscalls, vec!["read".to_string()]);
        assert_eq!(rules[1].syscalls, vec!["clone".to_string()]);
        assert_eq!(rules[1].conditions.len(), 2);
    }
}
