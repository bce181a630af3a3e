//! The limits a supervisor enforces while a sandbox runs, shared by the
//! foreground relay (`attach`) and a detached container's supervisor
//! (`container::supervisor`): the wall clock, the output budget, and CPU
//! time and memory sampled by the watchdog when no cgroup holds them. The
//! kernel enforces the rest (rlimits, cgroups); see `limits`.

use std::time::{Duration, Instant};

use super::hot;
use super::limits::Enforcement;
use super::report::{Breach, Outcome};
use super::spawn::Running;
use super::watchdog;

/// How often the watchdog samples CPU and memory when no cgroup does it.
const WATCHDOG_TICK: Duration = Duration::from_millis(20);

/// The supervisor's side of one run's limits.
pub struct Watch<'a> {
    limits: &'a Enforcement,
    started_at: Instant,
    /// Deadlines are on [`hot::now`]'s clock: the loop reads it every tick
    /// without going through libc.
    wall_deadline: Option<Duration>,
    watching: bool,
    /// Bytes of stdout and stderr kept so far.
    pub output_bytes: u64,
    /// The limit the sandbox was killed for, once it was.
    pub breach: Option<Breach>,
    peak_watched_rss_kib: u64,
    /// The watchdog's last reading of the tree's CPU time: processes killed
    /// together with init are not always in init's rusage.
    last_watched_cpu: Duration,
    /// When the watchdog reads CPU time and memory again: once per tick, not
    /// on every wake-up (a chatty workload wakes the loop per chunk of
    /// output, and a reading walks /proc).
    next_sample: Duration,
    walker: watchdog::Walker,
}

impl<'a> Watch<'a> {
    /// Start watching a run that started at `started_at`.
    pub fn new(limits: &'a Enforcement, started_at: Instant) -> Watch<'a> {
        let start = hot::now().saturating_sub(started_at.elapsed());
        Watch {
            limits,
            started_at,
            wall_deadline: limits
                .limits
                .wall_time_ms
                .map(|ms| start + Duration::from_millis(ms)),
            watching: limits.watch_cpu_ms.is_some() || limits.watch_memory.is_some(),
            output_bytes: 0,
            breach: None,
            peak_watched_rss_kib: 0,
            last_watched_cpu: Duration::ZERO,
            // The first sample a tick in: at the start there is nothing to
            // measure yet, and reading the cgroup then delays the run.
            next_sample: start + WATCHDOG_TICK,
            walker: watchdog::Walker::new(),
        }
    }

    /// The poll timeout (ms, -1 for none) until the next check is due.
    #[link_section = ".hutch.hot"]
    #[inline(never)]
    pub fn timeout_ms(&self) -> i32 {
        if self.breach.is_some() {
            return -1;
        }
        let now = hot::now();
        let mut timeout = self.wall_deadline.map(|d| d.saturating_sub(now));
        if self.watching {
            let sample = self.next_sample.saturating_sub(now);
            timeout = Some(timeout.map_or(sample, |t| t.min(sample)));
        }
        // Round up: waking a little early would spin until the deadline.
        timeout.map_or(-1, |t| {
            // In u64: u128 arithmetic calls out of the hot section.
            let ms = t
                .as_secs()
                .saturating_mul(1000)
                .saturating_add(u64::from(t.subsec_nanos().div_ceil(1_000_000)));
            ms.min(i32::MAX as u64) as i32
        })
    }

    /// How many more bytes of output may be kept.
    pub fn output_budget(&self) -> u64 {
        self.limits
            .limits
            .output
            .map_or(u64::MAX, |l| l.saturating_sub(self.output_bytes))
    }

    /// Count `read` bytes of output of which `kept` were kept; past the
    /// limit (exactly the limit is kept, the rest dropped) the run ends.
    pub fn count_output(&mut self, read: u64, kept: u64, running: &Running) {
        self.output_bytes += kept;
        if read > kept && self.breach.is_none() {
            self.kill(Breach::Output, running);
        }
    }

    /// Check the wall clock and the watchdog's limits; kill the sandbox
    /// when one is passed.
    #[link_section = ".hutch.hot"]
    #[inline(never)]
    pub fn check(&mut self, running: &Running) {
        if self.breach.is_some() {
            return;
        }
        let now = hot::now();
        if self.wall_deadline.is_some_and(|d| now >= d) {
            return self.kill(Breach::WallTime, running);
        }
        if !self.watching || now < self.next_sample {
            return;
        }
        self.next_sample = now + WATCHDOG_TICK;
        let limits = self.limits;
        let cpu_from_cgroup = limits
            .cgroup
            .as_ref()
            .and_then(|c| c.cpu_ns())
            .map(Duration::from_nanos);
        // The /proc walk only when the cgroup cannot say it all.
        let s = if cpu_from_cgroup.is_none() || limits.watch_memory.is_some() {
            self.walker.sample(running.pid)
        } else {
            watchdog::Sample::default()
        };
        self.peak_watched_rss_kib = self.peak_watched_rss_kib.max(s.rss_kib);
        let cpu = cpu_from_cgroup.unwrap_or(s.cpu);
        self.last_watched_cpu = self.last_watched_cpu.max(s.cpu);
        if limits
            .watch_cpu_ms
            .is_some_and(|ms| cpu.as_millis() as u64 > ms)
        {
            self.kill(Breach::CpuTime, running);
        } else if limits.watch_memory.is_some_and(|m| s.rss_kib * 1024 > m) {
            self.kill(Breach::Memory, running);
        }
    }

    fn kill(&mut self, breach: Breach, running: &Running) {
        self.breach = Some(breach);
        let _ = running.signal(libc::SIGKILL);
    }

    /// The outcome while init may still be exiting, when the cgroup says
    /// every other process is gone and has every figure (CPU time, peak
    /// memory), for a run whose cgroup the keeper ([`super::teardown`])
    /// removes. The second value says whether init is still in the cgroup
    /// (if not, it is empty and the caller may remove it at once). `None`
    /// when the figures are not final; [`Watch::finish`] then waits for
    /// init.
    pub fn finish_before_init_exits(&self, running: &mut Running) -> Option<(Outcome, bool)> {
        let cgroup = self.limits.cgroup.as_ref()?;
        let exit = running.workload_ended()?;
        let init_inside = cgroup.holds_at_most(running.pid)?;
        let elapsed = self.started_at.elapsed();
        let stats = cgroup.stats();
        let cpu = Duration::from_nanos(stats.cpu_ns?);
        // The cgroup's peak (less what a pooled slot held) can fall below
        // the largest process's own when the slot's old page cache is
        // reclaimed during the run: the run used at least that much.
        let max_rss_kib = (stats.peak_memory? / 1024).max(running.workload_max_rss_kib());
        let outcome = Outcome {
            exit,
            wall: elapsed,
            cpu,
            max_rss_kib,
            output_bytes: self.output_bytes,
            breach: self.breach,
            cgroup: Some(stats),
        };
        Some((outcome, init_inside))
    }

    /// Reap the sandbox and report what happened.
    pub fn finish(self, running: Running) -> Outcome {
        let elapsed = self.started_at.elapsed();
        let (exit, usage) = running.wait_with_usage();
        let cgroup = self.limits.cgroup.as_ref().map(|c| c.stats());
        let rusage_cpu = timeval(usage.ru_utime) + timeval(usage.ru_stime);
        let cpu = cgroup
            .and_then(|c| c.cpu_ns)
            .map(Duration::from_nanos)
            .unwrap_or(rusage_cpu.max(self.last_watched_cpu));
        // init's usage covers every process it reaped; the watchdog's
        // samples and the cgroup's peak cover processes together.
        let max_rss_kib = cgroup
            .and_then(|c| c.peak_memory)
            .map_or(0, |b| b / 1024)
            .max(usage.ru_maxrss.max(0) as u64)
            .max(self.peak_watched_rss_kib);
        Outcome {
            exit,
            wall: elapsed,
            cpu,
            max_rss_kib,
            output_bytes: self.output_bytes,
            breach: self.breach,
            cgroup,
        }
    }
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}
