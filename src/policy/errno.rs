//! Errno names a profile may use (`errno = "EPERM"`), and back for display.

/// The errnos a filter usefully returns, by name.
const ERRNOS: &[(&str, i32)] = &[
    ("EPERM", libc::EPERM),
    ("ENOENT", libc::ENOENT),
    ("ESRCH", libc::ESRCH),
    ("EINTR", libc::EINTR),
    ("EIO", libc::EIO),
    ("ENXIO", libc::ENXIO),
    ("E2BIG", libc::E2BIG),
    ("ENOEXEC", libc::ENOEXEC),
    ("EBADF", libc::EBADF),
    ("ECHILD", libc::ECHILD),
    ("EAGAIN", libc::EAGAIN),
    ("ENOMEM", libc::ENOMEM),
    ("EACCES", libc::EACCES),
    ("EFAULT", libc::EFAULT),
    ("EBUSY", libc::EBUSY),
    ("EEXIST", libc::EEXIST),
    ("EXDEV", libc::EXDEV),
    ("ENODEV", libc::ENODEV),
    ("ENOTDIR", libc::ENOTDIR),
    ("EISDIR", libc::EISDIR),
    ("EINVAL", libc::EINVAL),
    ("ENFILE", libc::ENFILE),
    ("EMFILE", libc::EMFILE),
    ("ENOTTY", libc::ENOTTY),
    ("EFBIG", libc::EFBIG),
    ("ENOSPC", libc::ENOSPC),
    ("ESPIPE", libc::ESPIPE),
    ("EROFS", libc::EROFS),
    ("EMLINK", libc::EMLINK),
    ("EPIPE", libc::EPIPE),
    ("ERANGE", libc::ERANGE),
    ("ENOSYS", libc::ENOSYS),
    ("ENOTSUP", libc::ENOTSUP),
    ("EOPNOTSUPP", libc::EOPNOTSUPP),
    ("EAFNOSUPPORT", libc::EAFNOSUPPORT),
    ("EPROTONOSUPPORT", libc::EPROTONOSUPPORT),
    ("ECONNREFUSED", libc::ECONNREFUSED),
    ("EHWPOISON", libc::EHWPOISON),
];

/// The largest errno a seccomp filter can return (SECCOMP_RET_DATA is 16
/// bits, but the kernel treats anything above MAX_ERRNO as a valid return).
pub const MAX_ERRNO: u32 = 4095;

pub fn by_name(name: &str) -> Option<u32> {
    ERRNOS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, v)| v as u32)
}

pub fn name(errno: u32) -> String {
    ERRNOS
        .iter()
        .find(|&&(_, v)| v as u32 == errno)
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| errno.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_round_trip() {
        assert_eq!(super::by_name("eperm"), Some(1));
        assert_eq!(super::name(38), "ENOSYS");
        assert_eq!(super::name(999), "999");
        assert_eq!(super::by_name("EWHATEVER"), None);
    }
}
