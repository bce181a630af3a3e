//! What a container *is*, fixed at create time: its id, name, image, the
//! resolved Spec and the options of its lifecycle. Stored as
//! `containers/<id>/config.json` and never rewritten.

use serde::{Deserialize, Serialize};

use super::time::Nanos;
use crate::sandbox::Spec;

/// The json-file log options (`--log-opt max-size=10m --log-opt max-file=3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    /// Rotate when the current file would grow past this many bytes.
    pub max_size: u64,
    /// How many files to keep, the current one included.
    pub max_file: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        // A cap by default: an untrusted workload must not fill the disk
        // with output (Docker's default is unbounded).
        LogConfig {
            max_size: 10 << 20,
            max_file: 3,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub id: String,
    pub name: String,
    pub created: Nanos,
    /// The image reference as given (`rmi` refuses to remove an image a
    /// container uses); `None` for `--rootfs DIR` and `host`.
    pub image: Option<String>,
    /// What `ps` shows in the IMAGE column: the image, the rootfs directory
    /// or `host`.
    pub image_display: String,
    /// Remove the container when it exits (`--rm`).
    pub auto_remove: bool,
    pub stop_signal: i32,
    /// Seconds `stop` waits before SIGKILL, unless `-t` says otherwise.
    pub stop_timeout: u64,
    pub log: LogConfig,
    /// Where the supervisor writes the judge's report when the workload
    /// exits (`--report FILE`, made absolute at create).
    #[serde(default)]
    pub report: Option<std::path::PathBuf>,
    pub spec: Spec,
}

/// Docker's rule for names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

/// A 64-digit lowercase hex id.
pub fn valid_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

const ADJECTIVES: &[&str] = &[
    "brave", "calm", "eager", "fond", "gentle", "happy", "jolly", "keen", "lucid", "merry",
    "nimble", "proud", "quiet", "sharp", "swift", "tender", "vivid", "wise", "zealous", "bold",
];
const NOUNS: &[&str] = &[
    "badger", "beaver", "ferret", "gerbil", "hamster", "hare", "hedgehog", "lemming", "marmot",
    "mole", "mouse", "otter", "rabbit", "shrew", "squirrel", "stoat", "vole", "weasel", "wombat",
    "dormouse",
];

/// A generated name, "adjective_animal", from the id's digits; the store
/// adds a suffix when it is taken.
pub fn generated_name(id: &str, attempt: u32) -> String {
    let n = u64::from_str_radix(&id[..12], 16).unwrap_or(0);
    let base = format!(
        "{}_{}",
        ADJECTIVES[(n % ADJECTIVES.len() as u64) as usize],
        NOUNS[((n / 97) % NOUNS.len() as u64) as usize]
    );
    if attempt == 0 {
        base
    } else {
        format!("{base}{attempt}")
    }
}

/// A signal by name ("TERM", "SIGTERM", "sigkill") or number.
pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => {
            let n = name.strip_prefix("RTMIN+")?.parse::<i32>().ok()?;
            let sig = libc::SIGRTMIN() + n;
            return (sig <= libc::SIGRTMAX()).then_some(sig);
        }
    };
    Some(n)
}

/// The name Docker shows for a signal ("SIGTERM").
pub fn signal_name(sig: i32) -> String {
    for name in [
        "HUP", "INT", "QUIT", "KILL", "USR1", "USR2", "PIPE", "ALRM", "TERM", "CONT", "STOP",
        "WINCH", "SEGV", "ABRT",
    ] {
        if parse_signal(name) == Some(sig) {
            return format!("SIG{name}");
        }
    }
    sig.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids() {
        assert!(valid_name("my-container") && valid_name("a1.b_c"));
        assert!(!valid_name("x") && !valid_name("-x") && !valid_name("a/b") && !valid_name(""));
        assert!(valid_id(&"ab".repeat(32)));
        assert!(!valid_id("AB") && !valid_id(&"g".repeat(64)));
        let id = "0123456789abcdef".repeat(4);
        assert!(valid_name(&generated_name(&id, 0)));
        assert_ne!(generated_name(&id, 0), generated_name(&id, 1));
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("TERM"), Some(libc::SIGTERM));
        assert_eq!(parse_signal("sigkill"), Some(libc::SIGKILL));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("NOPE"), None);
        assert_eq!(parse_signal("0"), None);
        assert_eq!(signal_name(libc::SIGTERM), "SIGTERM");
    }
}
