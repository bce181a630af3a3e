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

const LINK_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// What a name's symlink holds: the id's 32 bytes in unpadded base64url,
/// 43 characters. ext4 keeps a symlink target shorter than 60 bytes in the
/// inode; the 64-digit id would take a data block, whose freeing on `rm`
/// costs a synchronous discard where the filesystem is mounted with
/// `discard` (milliseconds on every `--rm` run of a busy disk).
pub fn name_link_target(id: &str) -> String {
    let bytes: Vec<u8> = (0..id.len() / 2)
        .filter_map(|i| u8::from_str_radix(id.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    let mut out = String::with_capacity(43);
    for chunk in bytes.chunks(3) {
        let mut n = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            n |= (*b as u32) << (16 - 8 * i);
        }
        for i in 0..=chunk.len() {
            out.push(LINK_ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// The id a name's symlink points to: [`name_link_target`]'s form, or the
/// 64 hex digits that earlier versions wrote.
pub fn id_of_name_link(target: &std::path::Path) -> Option<String> {
    let t = target.to_str()?;
    if valid_id(t) {
        return Some(t.to_string());
    }
    if t.len() != 43 {
        return None;
    }
    let mut bits = 0u32;
    let mut held = 0;
    let mut id = String::with_capacity(64);
    for c in t.bytes() {
        bits = bits << 6 | LINK_ALPHABET.iter().position(|&a| a == c)? as u32;
        held += 6;
        if held >= 8 {
            held -= 8;
            id.push_str(&format!("{:02x}", (bits >> held) & 0xff));
        }
    }
    // 43 characters carry 258 bits: the last two must be zero, as written.
    (bits & 0b11 == 0 && valid_id(&id)).then_some(id)
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
    fn name_links_fit_in_an_inode_and_round_trip() {
        use std::path::Path;
        for id in [
            "0123456789abcdef".repeat(4),
            "f".repeat(64),
            "0".repeat(64),
            "a1".repeat(32),
        ] {
            let t = name_link_target(&id);
            assert!(t.len() < 60, "{t}");
            assert_eq!(id_of_name_link(Path::new(&t)), Some(id.clone()));
            // What earlier versions wrote still resolves.
            assert_eq!(id_of_name_link(Path::new(&id)), Some(id.clone()));
        }
        let t = name_link_target(&"f".repeat(64));
        assert_eq!(t, format!("{}8", "_".repeat(42)));
        for bad in [&t[..42], "x", "", "../../etc", &format!("{}9", &t[..42])] {
            assert_eq!(id_of_name_link(Path::new(bad)), None, "{bad}");
        }
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
