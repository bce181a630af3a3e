//! The container log, as Docker's json-file driver writes it: one JSON
//! object a line, `{"log":"hello\n","stream":"stdout","time":"..."}`, in
//! `container.log`, rotated to `container.log.1`, `.2`... when it would
//! pass `max-size`, keeping `max-file` files in all.
//!
//! The writer runs in the supervisor. When the disk is full it drops lines
//! rather than block the workload (a blocked pipe would freeze it), and
//! records what it dropped in `log-status`, a small file allocated at start
//! and rewritten in place, so reporting the problem needs no free space.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::process::PidFd;
use super::record::LogConfig;
use super::time::{self, Nanos};

pub const LOG: &str = "container.log";
pub const STATUS: &str = "log-status";
/// The fixed size of `log-status`.
const STATUS_SIZE: usize = 512;
/// A line longer than this is split, as Docker splits at 16 KiB.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// What went wrong while logging, as kept in `log-status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogTrouble {
    pub error: String,
    /// Lines lost since the first failure.
    pub dropped: u64,
    pub since: String,
}

pub struct Writer {
    dir: PathBuf,
    cfg: LogConfig,
    file: Option<File>,
    size: u64,
    status: Option<File>,
    trouble: Option<LogTrouble>,
}

impl Writer {
    /// Open (append to) the log in `dir`. Never fails: a log that cannot
    /// be opened is reported through `log-status` like a full disk.
    pub fn open(dir: &Path, cfg: LogConfig) -> Writer {
        let status = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(dir.join(STATUS))
            .ok();
        if let Some(s) = &status {
            // Reserve the space now, while there is some.
            let _ = s.write_all_at(&[b' '; STATUS_SIZE], 0);
            let _ = s.sync_data();
        }
        let mut w = Writer {
            dir: dir.to_path_buf(),
            cfg,
            file: None,
            size: 0,
            status,
            trouble: None,
        };
        if let Err(e) = w.reopen() {
            w.fail(&e);
        }
        w
    }

    fn path(&self, n: u32) -> PathBuf {
        if n == 0 {
            self.dir.join(LOG)
        } else {
            self.dir.join(format!("{LOG}.{n}"))
        }
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        let f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(self.path(0))?;
        self.size = f.metadata()?.len();
        self.file = Some(f);
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        if self.cfg.max_file <= 1 {
            std::fs::remove_file(self.path(0))?;
        } else {
            for n in (1..self.cfg.max_file - 1).rev() {
                let _ = std::fs::rename(self.path(n), self.path(n + 1));
            }
            std::fs::rename(self.path(0), self.path(1))?;
        }
        self.reopen()
    }

    /// Append one line (its newline included, if it had one).
    pub fn write(&mut self, stream: &str, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let mut rec = String::with_capacity(text.len() + 80);
        rec.push_str("{\"log\":");
        rec.push_str(&serde_json::to_string(&text).unwrap_or_else(|_| "\"\"".into()));
        rec.push_str(",\"stream\":\"");
        rec.push_str(stream);
        rec.push_str("\",\"time\":\"");
        rec.push_str(&time::rfc3339(time::now()));
        rec.push_str("\"}\n");
        if let Err(e) = self.append(rec.as_bytes()) {
            self.fail(&e);
        } else if self.trouble.is_some() {
            // Space came back: keep the record of what was lost.
            self.report();
        }
    }

    fn append(&mut self, rec: &[u8]) -> std::io::Result<()> {
        if self.size > 0 && self.size + rec.len() as u64 > self.cfg.max_size {
            self.rotate()?;
        }
        if self.file.is_none() {
            self.reopen()?;
        }
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("log not open"))?;
        if let Err(e) = f.write_all(rec) {
            // A partial line would break the JSON-lines format: cut it off.
            let _ = f.set_len(self.size);
            return Err(e);
        }
        self.size += rec.len() as u64;
        Ok(())
    }

    fn fail(&mut self, e: &std::io::Error) {
        match &mut self.trouble {
            Some(t) => {
                t.dropped += 1;
                t.error = e.to_string();
            }
            None => {
                self.trouble = Some(LogTrouble {
                    error: e.to_string(),
                    dropped: 1,
                    since: time::rfc3339(time::now()),
                })
            }
        }
        self.report();
    }

    fn report(&mut self) {
        let (Some(s), Some(t)) = (&self.status, &self.trouble) else {
            return;
        };
        let mut json = serde_json::to_vec(t).unwrap_or_default();
        json.truncate(STATUS_SIZE - 1);
        json.resize(STATUS_SIZE - 1, b' ');
        json.push(b'\n');
        let _ = s.write_all_at(&json, 0);
    }
}

/// The trouble the writer recorded, if any.
pub fn trouble(dir: &Path) -> Option<LogTrouble> {
    let text = std::fs::read_to_string(dir.join(STATUS)).ok()?;
    serde_json::from_str(text.trim()).ok()
}

/// Lines of the rotated files (`container.log.N`), oldest first.
pub fn read_rotated(dir: &Path) -> Vec<Entry> {
    let mut files: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n: u32 = name.strip_prefix(&format!("{LOG}."))?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    let mut out = Vec::new();
    for (_, path) in files {
        if let Ok(text) = std::fs::read_to_string(&path) {
            out.extend(parse_lines(&text));
        }
    }
    out
}

fn parse_lines(text: &str) -> impl Iterator<Item = Entry> + '_ {
    text.lines().filter_map(|l| serde_json::from_str(l).ok())
}

/// The current log file, opened before anything is read from the rotated
/// ones, so that following it later misses nothing.
pub fn open_current(dir: &Path) -> Option<File> {
    File::open(dir.join(LOG)).ok()
}

/// Every entry of the log, oldest first: the rotated files, then what
/// `current` holds from its position to its end (whole lines only; a
/// partial last line stays in `pending` for [`follow`]).
pub fn read_all(dir: &Path, current: Option<&mut File>, pending: &mut Vec<u8>) -> Vec<Entry> {
    let mut out = read_rotated(dir);
    if let Some(f) = current {
        let _ = f.read_to_end(pending);
        if let Some(i) = pending.iter().rposition(|&b| b == b'\n') {
            let whole: Vec<u8> = pending.drain(..=i).collect();
            out.extend(parse_lines(&String::from_utf8_lossy(&whole)));
        }
    }
    out
}

/// How `hutch logs` prints entries.
#[derive(Debug, Clone, Default)]
pub struct Show {
    pub timestamps: bool,
    pub since: Option<Nanos>,
    pub until: Option<Nanos>,
}

impl Show {
    pub fn keep(&self, e: &Entry) -> bool {
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let Some(t) = time::parse_rfc3339(&e.time) else {
            return true;
        };
        self.since.map_or(true, |s| t >= s) && self.until.map_or(true, |u| t <= u)
    }

    /// Print to stdout or stderr after the entry's stream.
    pub fn print(&self, e: &Entry) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(e.log.len() + 40);
        if self.timestamps {
            buf.extend_from_slice(e.time.as_bytes());
            buf.push(b' ');
        }
        buf.extend_from_slice(e.log.as_bytes());
        if e.stream == "stderr" {
            let mut err = std::io::stderr().lock();
            err.write_all(&buf)?;
            err.flush()
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(&buf)?;
            out.flush()
        }
    }
}

/// Follow the current log file from where `file` stands until
/// `until_exit` (the supervisor) ends, printing every new entry and moving
/// to the new file when the log rotates. Without a supervisor, print what
/// is there and return.
pub fn follow(
    dir: &Path,
    mut file: Option<File>,
    mut pending: Vec<u8>,
    until_exit: Option<&PidFd>,
    show: &Show,
) -> std::io::Result<()> {
    let inotify = Inotify::watch(dir)?;
    let path = dir.join(LOG);
    let exit_fd = until_exit.map_or(-1, PidFd::raw);
    loop {
        let mut fds = [
            libc::pollfd {
                fd: inotify.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: exit_fd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, if exit_fd < 0 { 0 } else { -1 }) };
        if n < 0 {
            continue;
        }
        if fds[0].revents != 0 {
            inotify.drain();
        }
        let ended = exit_fd < 0 || fds[1].revents != 0;
        // Read what the current file gained; if it was rotated away, finish
        // it and move to the new one.
        loop {
            if let Some(f) = &mut file {
                let _ = f.read_to_end(&mut pending);
                emit_lines(&mut pending, show)?;
            }
            let current = std::fs::metadata(&path).ok().map(|m| m.ino());
            let ours = file
                .as_ref()
                .and_then(|f| f.metadata().ok())
                .map(|m| m.ino());
            if current.is_some() && current != ours {
                file = File::open(&path).ok();
                pending.clear();
                continue;
            }
            break;
        }
        if ended {
            return Ok(());
        }
    }
}

fn emit_lines(pending: &mut Vec<u8>, show: &Show) -> std::io::Result<()> {
    while let Some(i) = pending.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = pending.drain(..=i).collect();
        if let Ok(e) = serde_json::from_slice::<Entry>(&line) {
            if show.keep(&e) {
                show.print(&e)?;
            }
        }
    }
    Ok(())
}

struct Inotify {
    fd: std::os::fd::OwnedFd,
}

impl Inotify {
    fn watch(dir: &Path) -> std::io::Result<Inotify> {
        use std::os::fd::FromRawFd;
        // SAFETY: inotify_init1 takes flags and returns a new descriptor.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor owned by nobody else.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let c = crate::sandbox::sys::cstr(dir)?;
        // SAFETY: `c` is a valid C string; the descriptor is ours.
        let w = unsafe {
            libc::inotify_add_watch(
                fd.as_raw_fd(),
                c.as_ptr(),
                libc::IN_MODIFY | libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_MOVED_FROM,
            )
        };
        if w < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Inotify { fd })
    }

    fn drain(&self) {
        let mut buf = [0u8; 4096];
        // SAFETY: reading into a valid buffer; the fd is non-blocking.
        while unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_json_lines_and_rotates() {
        let dir = std::env::temp_dir().join(format!("hutch-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut w = Writer::open(
            &dir,
            LogConfig {
                max_size: 400,
                max_file: 2,
            },
        );
        for i in 0..20 {
            w.write(
                if i % 2 == 0 { "stdout" } else { "stderr" },
                format!("line {i}\n").as_bytes(),
            );
        }
        w.write("stdout", "quote \" and \u{1}\n".as_bytes());
        let all = read_all(&dir, open_current(&dir).as_mut(), &mut Vec::new());
        assert!(all.len() < 21, "old lines were rotated away");
        let last = all.last().unwrap();
        assert_eq!(last.log, "quote \" and \u{1}\n");
        assert_eq!(last.stream, "stdout");
        assert!(time::parse_rfc3339(&last.time).is_some());
        assert!(std::fs::metadata(dir.join(LOG)).unwrap().len() <= 400);
        assert!(dir.join(format!("{LOG}.1")).exists());
        assert!(!dir.join(format!("{LOG}.2")).exists());
        assert!(trouble(&dir).is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
