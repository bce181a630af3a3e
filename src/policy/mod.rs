//! Security policies: seccomp and Landlock profiles loaded from files.
//!
//! A profile (`policies/*.toml`, or a user's file, or Docker's seccomp
//! JSON for the seccomp part) is read, size-capped, parsed with
//! file:line:column errors, merged along its `extends` chain, checked
//! against the kernel's Landlock ABI and compiled to BPF, all before any
//! clone. The result, a [`Policy`], is part of the Spec. The child calls
//! [`Policy::apply_landlock`] just before dropping capabilities and
//! [`Policy::apply_seccomp`] as the very last step before execve.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod bpf_opt;
pub mod bpf_tree;
pub mod cache;
pub mod docker;
pub mod errno;
pub mod landlock;
pub mod profile;
pub mod seccomp;
mod syscalls;

use self::landlock::{AbiError, Plan};
use self::profile::Profile;
use self::seccomp::{Arch, Compiled, SeccompModel};

/// The shipped profiles, compiled into the binary so an installed hutch
/// needs no data directory.
pub const SHIPPED: &[(&str, &str)] = &[
    ("default", include_str!("../../policies/default.toml")),
    ("judge", include_str!("../../policies/judge.toml")),
    ("unconfined", include_str!("../../policies/unconfined.toml")),
];

/// The profile `hutch run` uses when none is chosen.
pub const DEFAULT_PROFILE: &str = "default";

/// Where in a profile something is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    /// 1-based; 0 when unknown.
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.column)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("policy {path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("policy {file} is {size} bytes, more than the {max} a profile may have")]
    TooLarge {
        file: String,
        size: usize,
        max: usize,
    },
    #[error("{at}: {message}")]
    Syntax { at: Location, message: String },
    #[error("{at}: {key}: {reason}")]
    Invalid {
        at: Location,
        key: String,
        reason: String,
    },
    #[error("no shipped policy named {0:?} (hint: default, judge, unconfined, or a path to a .toml file)")]
    UnknownName(String),
    #[error("{file}: the `extends` chain is longer than {max} profiles (a cycle?)")]
    ExtendsDepth { file: String, max: usize },
    #[error("policy {name}: {source}")]
    Landlock { name: String, source: AbiError },
    #[error("policy {name}: cannot compile the seccomp filter: {reason}")]
    Compile { name: String, reason: String },
    #[error("seccomp profiles are not supported on this architecture (hint: --security-opt seccomp=unconfined)")]
    UnsupportedArch,
    #[error("invalid --security-opt {0:?} (hint: seccomp=FILE.json, seccomp=unconfined, landlock=unconfined, no-new-privileges)")]
    SecurityOpt(String),
    #[error("{reason}")]
    Apply { what: &'static str, reason: String },
}

/// A policy resolved for one run. `unconfined` applies nothing.
/// Serialisable: a container's record keeps its resolved policy, and the
/// supervisor and `exec` apply it again from there. Reading one back fails
/// closed: a record that names a policy but carries neither filter (a
/// truncated or hand-edited record) is refused rather than run unconfined.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "StoredPolicy")]
pub struct Policy {
    pub name: String,
    seccomp: Option<Arc<Compiled>>,
    landlock: Option<Plan>,
    /// Whether the workload may open IPv4 or IPv6 sockets
    /// ([`SeccompModel::allows_inet_sockets`]). When not, `run` leaves the
    /// sandbox's loopback down (`NetworkSpec::loopback_down`: bringing it
    /// up and tearing its addresses and routes down again is about 4% of a
    /// judge run).
    #[serde(default = "yes")]
    pub inet_sockets: bool,
    /// Said on stderr when the policy is chosen: what is not enforced.
    pub warnings: Vec<String>,
    /// What the policy enforces, for `hutch policy check`. A record keeps
    /// only the lines its fail-closed check reads ("seccomp: none",
    /// "landlock: none"): the rest is half of a record's size, written at
    /// every run and read by nothing.
    #[serde(serialize_with = "serialize_record_report")]
    pub report: Vec<String>,
}

/// No filters, and sockets as the kernel allows them.
impl Default for Policy {
    fn default() -> Policy {
        Policy {
            name: String::new(),
            seccomp: None,
            landlock: None,
            inet_sockets: true,
            warnings: Vec::new(),
            report: Vec::new(),
        }
    }
}

/// A record or cache entry written before a field existed: the answer
/// that enforces nothing less.
fn yes() -> bool {
    true
}

/// The lines of a policy's report that reading a record back needs.
const RECORD_REPORT_LINES: [&str; 2] = ["seccomp: none", "landlock: none"];

fn serialize_record_report<S: serde::Serializer>(
    report: &[String],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(
        report
            .iter()
            .filter(|line| RECORD_REPORT_LINES.contains(&line.as_str())),
    )
}

/// A [`Policy`] as read from a container record, before the fail-closed check.
#[derive(serde::Deserialize)]
struct StoredPolicy {
    name: String,
    #[serde(default)]
    seccomp: Option<Arc<Compiled>>,
    #[serde(default)]
    landlock: Option<Plan>,
    #[serde(default = "yes")]
    inet_sockets: bool,
    #[serde(default)]
    warnings: Vec<String>,
    #[serde(default)]
    report: Vec<String>,
}

impl TryFrom<StoredPolicy> for Policy {
    type Error = String;

    fn try_from(p: StoredPolicy) -> Result<Policy, String> {
        // A filter may only be missing where resolving said so ("seccomp:
        // none", "landlock: none"), or for `unconfined` itself.
        let said = |line: &str| p.report.iter().any(|r| r == line);
        let unconfined = p.name == "unconfined";
        for (missing, line) in [
            (p.seccomp.is_none(), RECORD_REPORT_LINES[0]),
            (p.landlock.is_none(), RECORD_REPORT_LINES[1]),
        ] {
            if missing && !unconfined && !said(line) {
                return Err(format!(
                    "the record of policy {:?} lacks its {} filter; refusing to run without it",
                    p.name,
                    line.trim_end_matches(": none")
                ));
            }
        }
        Ok(Policy {
            name: p.name,
            seccomp: p.seccomp,
            landlock: p.landlock,
            inet_sockets: p.inet_sockets,
            warnings: p.warnings,
            report: p.report,
        })
    }
}

/// Where a profile comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Shipped(&'static str, &'static str),
    File(PathBuf),
}

impl Source {
    /// A shipped name, or a path (anything with a `/` or ending in `.toml`).
    pub fn parse(spec: &str) -> Result<Source, PolicyError> {
        if spec.contains('/') || spec.ends_with(".toml") {
            return Ok(Source::File(PathBuf::from(spec)));
        }
        SHIPPED
            .iter()
            .find(|(n, _)| *n == spec)
            .map(|&(n, t)| Source::Shipped(n, t))
            .ok_or_else(|| PolicyError::UnknownName(spec.to_string()))
    }

    pub fn label(&self) -> String {
        match self {
            Source::Shipped(n, _) => format!("policies/{n}.toml"),
            Source::File(p) => p.display().to_string(),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Source::Shipped(n, _) => n.to_string(),
            Source::File(p) => p.display().to_string(),
        }
    }
}

/// What the seccomp part of a run comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SeccompChoice {
    /// The profile's own `[seccomp]`.
    #[default]
    Profile,
    /// `--security-opt seccomp=unconfined`
    Unconfined,
    /// `--security-opt seccomp=FILE.json`
    DockerJson(PathBuf),
}

/// Everything the command line chose.
#[derive(Debug, Clone, Default)]
pub struct Choice {
    /// `--policy NAME|PATH`; `None` is [`DEFAULT_PROFILE`].
    pub profile: Option<String>,
    pub seccomp: SeccompChoice,
    /// `--security-opt landlock=unconfined`
    pub landlock_unconfined: bool,
}

/// Read a profile file, refusing anything but a regular file of sane size.
pub fn read_capped(path: &Path, max: usize) -> Result<String, PolicyError> {
    let read_err = |source| PolicyError::Read {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(path).map_err(read_err)?;
    let meta = f.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(PolicyError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mut data = Vec::new();
    f.take(max as u64 + 1)
        .read_to_end(&mut data)
        .map_err(read_err)?;
    if data.len() > max {
        return Err(PolicyError::TooLarge {
            file: path.display().to_string(),
            size: meta.len().max(data.len() as u64) as usize,
            max,
        });
    }
    String::from_utf8(data).map_err(|_| PolicyError::Syntax {
        at: Location {
            file: path.display().to_string(),
            line: 0,
            column: 0,
        },
        message: "not UTF-8 text".into(),
    })
}

/// Load a profile and merge its `extends` chain.
pub fn load_profile(source: &Source) -> Result<Profile, PolicyError> {
    load_at_depth(source, 0, &mut Vec::new())
}

/// Read a file for resolving a policy, and note it (with the hash of exactly
/// the text used) among the files the resolved policy depends on.
fn read_dep(path: &Path, max: usize, deps: &mut Vec<cache::Dep>) -> Result<String, PolicyError> {
    let text = read_capped(path, max)?;
    deps.push(cache::Dep::new(path, max, text.as_bytes()));
    Ok(text)
}

fn load_at_depth(
    source: &Source,
    depth: usize,
    deps: &mut Vec<cache::Dep>,
) -> Result<Profile, PolicyError> {
    if depth >= profile::MAX_EXTENDS_DEPTH {
        return Err(PolicyError::ExtendsDepth {
            file: source.label(),
            max: profile::MAX_EXTENDS_DEPTH,
        });
    }
    let text = match source {
        Source::Shipped(_, t) => t.to_string(),
        Source::File(p) => read_dep(p, profile::MAX_PROFILE_BYTES, deps)?,
    };
    let layer = profile::parse(&text, &source.label())?;
    let base = match &layer.extends {
        None => Profile::default(),
        Some((spec, at)) => {
            let parent = match Source::parse(spec) {
                // A relative path is relative to the profile that names it;
                // shipped profiles may extend only shipped ones.
                Ok(Source::File(p)) => match source {
                    Source::File(me) if p.is_relative() => {
                        Source::File(me.parent().unwrap_or(Path::new(".")).join(p))
                    }
                    Source::File(_) => Source::File(p),
                    Source::Shipped(..) => {
                        return Err(PolicyError::Invalid {
                            at: at.clone(),
                            key: "extends".into(),
                            reason: "a shipped profile may extend only shipped ones".into(),
                        })
                    }
                },
                Ok(s) => s,
                Err(e) => {
                    return Err(PolicyError::Invalid {
                        at: at.clone(),
                        key: "extends".into(),
                        reason: e.to_string(),
                    })
                }
            };
            load_at_depth(&parent, depth + 1, deps)?
        }
    };
    Ok(profile::merge(base, layer))
}

/// Compile a seccomp model for this host, through the cache. The second
/// value says where the cache entry is and whether it was used.
fn compile_cached(name: &str, model: &SeccompModel) -> Result<(Compiled, String), PolicyError> {
    let arch = Arch::host().ok_or(PolicyError::UnsupportedArch)?;
    let key = cache::key(model, arch);
    let dir = crate::paths::runtime_dir()
        .ok()
        .map(|d| d.join("seccomp"))
        .filter(|d| crate::paths::create_private(d).is_ok());
    if let Some(d) = &dir {
        if let Some(c) = cache::load(d, &key) {
            return Ok((c, format!("hit {}", cache::path(d, &key).display())));
        }
    }
    let compiled = seccomp::compile(model, arch).map_err(|reason| PolicyError::Compile {
        name: name.to_string(),
        reason,
    })?;
    let status = match &dir {
        // A cache that cannot be written only costs a recompile next time.
        Some(d) => match cache::store(d, &key, &compiled) {
            Ok(()) => format!("compiled, stored as {}", cache::path(d, &key).display()),
            Err(e) => format!("compiled, not stored: {e}"),
        },
        None => "compiled, no runtime dir to store it".into(),
    };
    Ok((compiled, status))
}

fn describe_seccomp(model: &SeccompModel, out: &mut Vec<String>) {
    let arch = Arch::host();
    out.push(format!(
        "seccomp: default action {}, new processes: {}",
        model.default_action,
        model.new_processes.name()
    ));
    for r in model.effective_rules() {
        if r.arch.is_some_and(|a| Some(a) != arch) {
            continue;
        }
        let names: Vec<&str> = r
            .syscalls
            .iter()
            .filter(|s| arch.is_some_and(|a| a.syscall(s).is_some()))
            .map(String::as_str)
            .collect();
        if names.is_empty() {
            continue;
        }
        let conds: Vec<String> = r.conditions.iter().map(|c| c.to_string()).collect();
        let when = if conds.is_empty() {
            String::new()
        } else {
            format!(" when {}", conds.join(" && "))
        };
        out.push(format!(
            "  {}{when}: {}  # {}",
            r.action,
            names.join(" "),
            r.why
        ));
    }
}

impl Policy {
    pub fn unconfined() -> Policy {
        Policy {
            name: "unconfined".into(),
            ..Policy::default()
        }
    }

    /// Resolve what the command line chose into a ready-to-apply policy.
    pub fn resolve(choice: &Choice) -> Result<Policy, PolicyError> {
        Policy::resolve_recording(choice, &mut Vec::new())
    }

    /// [`Policy::resolve`] through the cache of resolved policies in the
    /// runtime dir, for `run` and `create`: a warm start reads one file and
    /// re-reads (and hashes) the profile files it came from, instead of
    /// parsing, merging and compiling them. A changed file, kernel Landlock
    /// ABI or hutch build is a miss; so is any problem with the cache.
    pub fn resolve_cached(choice: &Choice) -> Result<Policy, PolicyError> {
        let Some(key) = cache::policy_key(choice) else {
            return Policy::resolve(choice);
        };
        let dir = crate::paths::runtime_dir()
            .ok()
            .map(|d| d.join("policy"))
            .filter(|d| crate::paths::create_private(d).is_ok());
        if let Some(p) = dir.as_deref().and_then(|d| cache::load_policy(d, &key)) {
            return Ok(p);
        }
        let mut deps = Vec::new();
        let policy = Policy::resolve_recording(choice, &mut deps)?;
        if let Some(d) = &dir {
            // A cache that cannot be written only costs a resolve next time.
            let _ = cache::store_policy(d, &key, &policy, &deps);
        }
        Ok(policy)
    }

    fn resolve_recording(
        choice: &Choice,
        deps: &mut Vec<cache::Dep>,
    ) -> Result<Policy, PolicyError> {
        let source = Source::parse(choice.profile.as_deref().unwrap_or(DEFAULT_PROFILE))?;
        let name = source.name();
        let mut profile = load_at_depth(&source, 0, deps)?;
        let mut warnings = Vec::new();
        let mut report = Vec::new();
        let mut docker_skipped = Vec::new();
        match &choice.seccomp {
            SeccompChoice::Profile => {}
            SeccompChoice::Unconfined => {
                profile.seccomp = None;
                warnings.push("no seccomp filter (--security-opt seccomp=unconfined): every syscall reaches the kernel".to_string());
            }
            SeccompChoice::DockerJson(path) => {
                let text = read_dep(path, docker::MAX_JSON_BYTES, deps)?;
                let host = docker::Host::current().ok_or(PolicyError::UnsupportedArch)?;
                let c = docker::parse(&text, &path.display().to_string(), host)?;
                docker_skipped = c.skipped;
                profile.seccomp = Some(c.model);
            }
        }
        if choice.landlock_unconfined {
            profile.landlock = None;
            warnings.push("no Landlock ruleset (--security-opt landlock=unconfined)".to_string());
        }
        let inet_sockets = profile
            .seccomp
            .as_ref()
            .map_or(true, SeccompModel::allows_inet_sockets);
        let seccomp = match &profile.seccomp {
            Some(m) => {
                describe_seccomp(m, &mut report);
                if !docker_skipped.is_empty() {
                    report.push(format!(
                        "  (names this architecture lacks, skipped: {})",
                        docker_skipped.join(" ")
                    ));
                }
                let (compiled, status) = compile_cached(&name, m)?;
                report.push(format!(
                    "  {} BPF program(s) for {}; cache: {status}",
                    compiled.programs.len(),
                    Arch::host().map(Arch::name).unwrap_or("?")
                ));
                Some(Arc::new(compiled))
            }
            None => {
                report.push("seccomp: none".into());
                None
            }
        };
        let landlock = match &profile.landlock {
            Some(m) => {
                let plan = Plan::new(m, landlock::kernel_abi()).map_err(|source| {
                    PolicyError::Landlock {
                        name: name.clone(),
                        source,
                    }
                })?;
                if !plan.not_enforced.is_empty() {
                    warnings.push(format!(
                        "Landlock is best-effort in this profile; not enforced on this kernel (ABI {}): {}",
                        plan.abi,
                        plan.not_enforced.join(", ")
                    ));
                }
                report.extend(plan.describe());
                Some(plan)
            }
            None => {
                report.push("landlock: none".into());
                None
            }
        };
        if seccomp.is_none()
            && landlock.is_none()
            && choice.seccomp != SeccompChoice::Unconfined
            && !choice.landlock_unconfined
        {
            warnings.push("no seccomp filter and no Landlock ruleset: the sandbox relies on namespaces and dropped capabilities alone".into());
        }
        if !inet_sockets {
            report.push(
                "network: loopback left down (the filter refuses IPv4 and IPv6 sockets)".into(),
            );
        }
        let warnings = warnings
            .into_iter()
            .map(|w| format!("policy {name}: {w}"))
            .collect();
        Ok(Policy {
            name,
            seccomp,
            landlock,
            inet_sockets,
            warnings,
            report,
        })
    }

    /// The Landlock plan in use, if any.
    pub fn landlock_plan(&self) -> Option<&Plan> {
        self.landlock.as_ref()
    }

    pub fn has_seccomp(&self) -> bool {
        self.seccomp.is_some()
    }

    /// Restrict the calling process with the profile's Landlock ruleset.
    /// `writable` lists the paths inside the sandbox that are meant to be
    /// written to (volumes, tmpfs mounts, and `/` unless the root is read-only).
    pub fn apply_landlock(&self, writable: &[PathBuf]) -> Result<(), PolicyError> {
        match &self.landlock {
            None => Ok(()),
            Some(plan) => plan.apply(writable).map_err(|reason| PolicyError::Apply {
                what: "Landlock",
                reason,
            }),
        }
    }

    /// Install the seccomp filter on the calling thread. Called last before
    /// execve, after no_new_privs; allocates nothing unless it fails.
    pub fn apply_seccomp(&self) -> Result<(), PolicyError> {
        match &self.seccomp {
            None => Ok(()),
            Some(c) => seccomp::install(c).map_err(|e| PolicyError::Apply {
                what: "seccomp",
                reason: e.to_string(),
            }),
        }
    }
}

/// One line for `hutch info`: the Landlock ABI the default profile uses on
/// this kernel, and what it cannot enforce here.
pub fn default_landlock_summary() -> String {
    let abi = landlock::kernel_abi();
    let model = Source::parse(DEFAULT_PROFILE)
        .and_then(|s| load_profile(&s))
        .map(|p| p.landlock);
    match model {
        Err(e) => format!("cannot load: {e}"),
        Ok(None) => "no Landlock".into(),
        Ok(Some(m)) => match Plan::new(&m, abi) {
            Err(e) => format!("refuses to start: {e}"),
            Ok(plan) if plan.not_enforced.is_empty() => {
                format!("enforces ABI {} features, all it asks for", plan.abi_used)
            }
            Ok(plan) => format!(
                "enforces ABI {} features; not enforced here: {}",
                plan.abi_used,
                plan.not_enforced.join(", ")
            ),
        },
    }
}

/// Entry points for the fuzz targets in `fuzz/` and the corpus replay
/// test: the same parsers hutch runs on untrusted profile input.
pub mod fuzzing {
    use super::*;

    /// Parse a hutch profile and compile whatever parses. True when it
    /// parsed.
    pub fn profile(data: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(data) else {
            return false;
        };
        let Ok(layer) = profile::parse(text, "fuzz.toml") else {
            return false;
        };
        let p = profile::merge(Profile::default(), layer);
        if let Some(m) = &p.seccomp {
            for arch in Arch::ALL {
                let _ = seccomp::compile(m, arch);
            }
        }
        if let Some(m) = &p.landlock {
            let _ = Plan::new(m, 7).map(|p| p.describe());
        }
        true
    }

    /// Parse a Docker/OCI seccomp JSON profile and compile whatever parses.
    /// True when it parsed.
    pub fn docker_json(data: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(data) else {
            return false;
        };
        let mut parsed = false;
        for arch in Arch::ALL {
            let host = docker::Host {
                arch,
                kernel: (6, 1),
            };
            if let Ok(c) = docker::parse(text, "fuzz.json", host) {
                parsed = true;
                let _ = seccomp::compile(&c.model, arch);
            }
        }
        parsed
    }
}

#[cfg(test)]
mod stored_policy_tests {
    use super::*;

    #[test]
    fn a_record_without_filters_is_refused_unless_unconfined() {
        assert!(serde_json::from_str::<Policy>(r#"{"name":"default"}"#).is_err());
        let lifted = r#"{"name":"default","report":["seccomp: none","landlock: none"]}"#;
        assert!(serde_json::from_str::<Policy>(lifted).is_ok());
        let resolved = Policy::resolve(&Choice::default()).unwrap();
        let back: Policy =
            serde_json::from_str(&serde_json::to_string(&resolved).unwrap()).unwrap();
        assert_eq!(back.name, resolved.name);
        let p: Policy = serde_json::from_str(r#"{"name":"unconfined"}"#).unwrap();
        assert_eq!(p.name, "unconfined");
    }

    #[test]
    fn judge_refuses_inet_sockets_and_the_others_allow_them() {
        let resolved = |profile: &str| {
            Policy::resolve(&Choice {
                profile: Some(profile.into()),
                ..Choice::default()
            })
            .unwrap()
        };
        let judge = resolved("judge");
        assert!(!judge.inet_sockets);
        assert!(judge
            .report
            .iter()
            .any(|l| l.contains("loopback left down")));
        assert!(resolved("default").inet_sockets);
        assert!(resolved("unconfined").inet_sockets);
        assert!(Policy::unconfined().inet_sockets);
        // Docker's profile lets any socket through.
        let docker = Policy::resolve(&Choice {
            seccomp: SeccompChoice::DockerJson(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/data/seccomp/docker-default.json"),
            ),
            ..Choice::default()
        })
        .unwrap();
        assert!(docker.inet_sockets);
        // A record written before the field reads as allowing them; one
        // written now keeps judge's answer.
        let old: Policy = serde_json::from_str(r#"{"name":"unconfined"}"#).unwrap();
        assert!(old.inet_sockets);
        let back: Policy = serde_json::from_str(&serde_json::to_string(&judge).unwrap()).unwrap();
        assert!(!back.inet_sockets);
        // Docker JSON pinning socket to AF_UNIX refuses them; adding
        // AF_INET (a second rule, as Docker splits them) allows them.
        let dir = std::env::temp_dir().join(format!("hutch-inet-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let docker_json = |families: &[u32]| {
            let rules: Vec<String> = families
                .iter()
                .map(|f| {
                    format!(
                        r#"{{"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{{"index":0,"value":{f},"op":"SCMP_CMP_EQ"}}]}}"#
                    )
                })
                .collect();
            let file = dir.join(format!("{}.json", families.len()));
            let text = format!(
                r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{{"names":["exit_group"],"action":"SCMP_ACT_ALLOW"}},{}]}}"#,
                rules.join(",")
            );
            std::fs::write(&file, text).unwrap();
            Policy::resolve(&Choice {
                profile: Some("unconfined".into()),
                seccomp: SeccompChoice::DockerJson(file),
                ..Choice::default()
            })
            .unwrap()
            .inet_sockets
        };
        assert!(!docker_json(&[1]));
        assert!(docker_json(&[1, 2]));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_record_keeps_only_the_report_lines_its_check_reads() {
        // A policy lifted to no filters at all still reads back...
        let lifted = Policy {
            name: "default".into(),
            report: vec![
                "seccomp: none".into(),
                "landlock: none".into(),
                "a line for humans".into(),
            ],
            ..Policy::default()
        };
        let json = serde_json::to_string(&lifted).unwrap();
        assert!(!json.contains("for humans"), "{json}");
        let back: Policy = serde_json::from_str(&json).unwrap();
        assert_eq!(back.report, ["seccomp: none", "landlock: none"]);
        // ...and a resolved one loses its report, not its filters.
        let resolved = Policy::resolve(&Choice::default()).unwrap();
        assert!(resolved.report.len() > 5);
        let json = serde_json::to_string(&resolved).unwrap();
        let back: Policy = serde_json::from_str(&json).unwrap();
        assert!(back.report.is_empty());
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            json,
            "the filters survive the round trip"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_profiles_load_and_compile_for_every_arch() {
        for (name, _) in SHIPPED {
            let p = load_profile(&Source::parse(name).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            if let Some(m) = &p.seccomp {
                for arch in Arch::ALL {
                    seccomp::compile(m, arch).unwrap_or_else(|e| panic!("{name} {arch:?}: {e}"));
                }
            }
        }
    }

    #[test]
    fn every_rule_of_the_shipped_profiles_says_why() {
        for (name, _) in SHIPPED {
            let p = load_profile(&Source::parse(name).unwrap()).unwrap();
            for r in p.seccomp.iter().flat_map(|m| &m.rules) {
                assert!(
                    r.why.trim().len() > 3,
                    "{name}: {:?} has no reason",
                    r.syscalls
                );
            }
            for r in p.landlock.iter().flat_map(|m| &m.paths) {
                assert!(r.why.trim().len() > 3, "{name}: {} has no reason", r.target);
            }
        }
    }

    #[test]
    fn default_denies_what_the_issue_lists() {
        let m = load_profile(&Source::parse("default").unwrap())
            .unwrap()
            .seccomp
            .unwrap();
        let unconditional: Vec<&str> = m
            .rules
            .iter()
            .filter(|r| r.action == seccomp::Action::Allow && r.conditions.is_empty())
            .flat_map(|r| r.syscalls.iter().map(String::as_str))
            .collect();
        for denied in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "perf_event_open",
            "ptrace",
            "userfaultfd",
            "init_module",
            "finit_module",
            "delete_module",
            "kexec_load",
            "kexec_file_load",
            "reboot",
            "swapon",
            "swapoff",
            "acct",
            "settimeofday",
            "clock_settime",
            "adjtimex",
            "clock_adjtime",
            "open_by_handle_at",
            "personality",
            "clone",
            "ioctl",
            "io_uring_setup",
            "pivot_root",
            "chroot",
            "fsopen",
            "move_mount",
            "open_tree",
        ] {
            assert!(
                !unconditional.contains(&denied),
                "default allows {denied} unconditionally"
            );
        }
    }

    /// Every syscall `default` lets through, Docker's default profile lets
    /// through too (for a process without capabilities, as hutch's are).
    #[test]
    fn default_allows_nothing_docker_refuses() {
        let json = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/seccomp/docker-default.json"),
        )
        .unwrap();
        let ours = load_profile(&Source::parse("default").unwrap())
            .unwrap()
            .seccomp
            .unwrap();
        for arch in Arch::ALL {
            let host = docker::Host {
                arch,
                kernel: (6, 18),
            };
            let docker = docker::parse(&json, "docker-default.json", host)
                .unwrap()
                .model;
            let allowed = |m: &SeccompModel| -> Vec<String> {
                m.effective_rules()
                    .into_iter()
                    .filter(|r| r.action == seccomp::Action::Allow)
                    .filter(|r| r.arch.map_or(true, |a| a == arch))
                    .flat_map(|r| r.syscalls)
                    .filter(|s| arch.syscall(s).is_some())
                    .collect()
            };
            let theirs = allowed(&docker);
            let extra: Vec<String> = allowed(&ours)
                .into_iter()
                .filter(|s| !theirs.contains(s))
                .collect();
            assert!(
                extra.is_empty(),
                "{arch:?}: default allows {extra:?}, Docker does not"
            );
        }
    }

    #[test]
    fn names_and_paths_resolve() {
        assert!(matches!(
            Source::parse("judge"),
            Ok(Source::Shipped("judge", _))
        ));
        assert!(matches!(Source::parse("./x.toml"), Ok(Source::File(_))));
        assert!(matches!(
            Source::parse("nope"),
            Err(PolicyError::UnknownName(_))
        ));
    }

    /// The fuzz targets' seed corpora, replayed through the same parsers.
    #[test]
    fn fuzz_corpora_replay() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        let mut seen = 0;
        for (target, f) in [
            ("profile", fuzzing::profile as fn(&[u8]) -> bool),
            ("docker_json", fuzzing::docker_json),
        ] {
            let dir = root.join(target);
            for entry in
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let parsed = f(&data);
                // Seeds named ok-* are valid inputs and must stay so.
                let name = path.file_name().unwrap().to_string_lossy();
                assert!(
                    !name.starts_with("ok-") || parsed,
                    "{} no longer parses",
                    path.display()
                );
                // Cheap extra cases: every prefix at a prime stride, so
                // errors at arbitrary offsets are exercised too.
                for end in (0..data.len()).step_by(53) {
                    let _ = f(&data[..end]);
                }
                seen += 1;
            }
        }
        assert!(
            seen >= 6,
            "the seed corpora are nearly empty ({seen} files)"
        );
    }
}

/// The seccomp models the BPF rewrites are proven on: every shipped profile
/// (for both architectures) and Docker's and containers-common's reference
/// profiles (parsed once per architecture, which is named beside them).
#[cfg(test)]
pub(crate) fn reference_seccomp_models(
) -> Vec<(String, seccomp::SeccompModel, Option<seccomp::Arch>)> {
    let mut models: Vec<_> = SHIPPED
        .iter()
        .filter_map(|(name, _)| {
            let m = load_profile(&Source::parse(name).unwrap())
                .unwrap()
                .seccomp?;
            Some((name.to_string(), m, None))
        })
        .collect();
    for file in ["docker-default.json", "containers-common.json"] {
        let json = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/seccomp")
                .join(file),
        )
        .unwrap();
        for arch in seccomp::Arch::ALL {
            let host = docker::Host {
                arch,
                kernel: (6, 1),
            };
            let m = docker::parse(&json, file, host).unwrap().model;
            models.push((file.into(), m, Some(arch)));
        }
    }
    models
}
