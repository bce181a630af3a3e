//! Where the runtime says what went wrong: stderr, and the `--log` file in
//! the format the caller reads (runc's JSON lines for Podman and
//! containerd: `{"level":"error","msg":"...","time":"..."}`).

use std::io::Write;
use std::path::PathBuf;

use super::LogFormat;

pub struct Logger {
    file: Option<PathBuf>,
    format: LogFormat,
    debug: bool,
}

impl Logger {
    pub fn new(file: Option<PathBuf>, format: LogFormat, debug: bool) -> Logger {
        Logger {
            file,
            format,
            debug,
        }
    }

    pub fn error(&self, msg: &str) {
        eprintln!("hutch-runtime: {msg}");
        self.write("error", msg);
    }

    pub fn warn(&self, msg: &str) {
        self.write("warning", msg);
    }

    pub fn debug(&self, msg: &str) {
        if self.debug {
            self.write("debug", msg);
        }
    }

    fn write(&self, level: &str, msg: &str) {
        let Some(path) = &self.file else { return };
        let time = crate::container::time::rfc3339(crate::container::time::now());
        let line = match self.format {
            LogFormat::Json => {
                serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
            }
            LogFormat::Text => format!("{time} {level}: {msg}"),
        };
        // One write of a whole line on an O_APPEND file: lines of several
        // runtime processes never interleave.
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }
}
