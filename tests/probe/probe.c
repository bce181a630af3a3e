/*
 * probe: try operations for real and print what the kernel answered.
 *
 *   probe OP [OP...]      prints "OP: OK" or "OP: <ERRNO NAME>" per line
 *
 * Built statically by the test harness (tests/sandbox/harness.rs, probe())
 * so it runs in a busybox root filesystem. Each forbidden operation is the
 * real syscall with arguments that would succeed (or fail differently)
 * without a filter; raw syscall(2) is used so libc cannot answer for the
 * kernel.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static const char *errname(int e) {
    switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case EBADF: return "EBADF";
    case ECHILD: return "ECHILD";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case EXDEV: return "EXDEV";
    case ENODEV: return "ENODEV";
    case ENOTDIR: return "ENOTDIR";
    case EINVAL: return "EINVAL";
    case ENOTTY: return "ENOTTY";
    case EROFS: return "EROFS";
    case EMLINK: return "EMLINK";
    case ENOSYS: return "ENOSYS";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EHWPOISON: return "EHWPOISON";
    case ESTALE: return "ESTALE";
    default: {
        static char buf[32];
        snprintf(buf, sizeof buf, "E%d", e);
        return buf;
    }
    }
}

/* -1 with errno, or >= 0. */
static int result(long ret) { return ret < 0 ? -errno : 0; }

static int op_mount(void) { return result(syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, NULL)); }
static int op_umount2(void) { return result(syscall(SYS_umount2, "/proc", MNT_DETACH)); }
/* In a child when possible, so a success does not move the probe itself
 * into a new user namespace for the operations after it. */
static int op_unshare_user(void) {
    int p[2];
    if (pipe(p) < 0) return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return result(syscall(SYS_unshare, CLONE_NEWUSER));
    }
    if (pid == 0) {
        int r = result(syscall(SYS_unshare, CLONE_NEWUSER));
        if (write(p[1], &r, sizeof r) != sizeof r) _exit(1);
        _exit(0);
    }
    int r = -EIO;
    if (read(p[0], &r, sizeof r) != sizeof r) r = -EIO;
    waitpid(pid, NULL, 0);
    close(p[0]);
    close(p[1]);
    return r;
}

static int op_clone_newuser(void) {
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    if (pid < 0) return -errno;
    waitpid(pid, NULL, 0);
    return 0;
}

static int op_setns(void) {
    int fd = open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int r = result(syscall(SYS_setns, fd, CLONE_NEWUTS));
    close(fd);
    return r;
}

static int op_keyctl(void) {
    return result(syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
}

static int op_add_key(void) {
    return result(syscall(SYS_add_key, "user", "hutch-probe", "x", 1, KEY_SPEC_PROCESS_KEYRING));
}

static int op_bpf(void) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    return result(syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));
}

static int op_perf_event_open(void) {
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.type = PERF_TYPE_SOFTWARE;
    attr.size = sizeof attr;
    attr.config = PERF_COUNT_SW_CPU_CLOCK;
    attr.disabled = 1;
    attr.exclude_kernel = 1;
    attr.exclude_hv = 1;
    return result(syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0));
}

/* Two children: one waits, the other tries to attach to it. */
static int op_ptrace_sibling(void) {
    int p[2];
    if (pipe(p) < 0) return -errno;
    pid_t a = fork();
    if (a < 0) return -errno;
    if (a == 0) {
        for (;;) pause();
    }
    pid_t b = fork();
    if (b < 0) {
        kill(a, SIGKILL);
        waitpid(a, NULL, 0);
        return -errno;
    }
    if (b == 0) {
        int r = result(syscall(SYS_ptrace, PTRACE_ATTACH, a, 0, 0));
        if (write(p[1], &r, sizeof r) != sizeof r) _exit(1);
        _exit(0);
    }
    int r = -EIO;
    if (read(p[0], &r, sizeof r) != sizeof r) r = -EIO;
    waitpid(b, NULL, 0);
    kill(a, SIGKILL);
    waitpid(a, NULL, 0);
    close(p[0]);
    close(p[1]);
    return r;
}

/* TIOCSTI on a terminal: a fresh pty, made our controlling terminal when
 * we have none, so only a filter (or the kernel's policy) stops it. */
static int op_tiocsti(void) {
    int m = open("/dev/ptmx", O_RDWR | O_CLOEXEC);
    if (m < 0) return -errno;
    int unlock = 0, n = -1;
    if (ioctl(m, TIOCSPTLCK, &unlock) < 0 || ioctl(m, TIOCGPTN, &n) < 0) {
        int e = -errno;
        close(m);
        return e;
    }
    char path[64];
    snprintf(path, sizeof path, "/dev/pts/%d", n);
    int s = open(path, O_RDWR | O_CLOEXEC);
    if (s < 0) {
        int e = -errno;
        close(m);
        return e;
    }
    char c = 'x';
    int r = result(syscall(SYS_ioctl, s, TIOCSTI, &c));
    close(s);
    close(m);
    return r;
}

/* TIOCSTI on our own terminal (stdin, with `hutch run -t`). */
static int op_tiocsti_stdin(void) {
    char c = '\n';
    return result(syscall(SYS_ioctl, 0, TIOCSTI, &c));
}

static int op_init_module(void) { return result(syscall(SYS_init_module, NULL, 0, "")); }
static int op_kexec_load(void) { return result(syscall(SYS_kexec_load, 0, 0, NULL, 0)); }

static int op_reboot(void) {
    return result(syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
                          LINUX_REBOOT_CMD_CAD_OFF, NULL));
}

static int op_swapon(void) { return result(syscall(SYS_swapon, "/nonexistent-swap", 0)); }
static int op_acct(void) { return result(syscall(SYS_acct, NULL)); }

static int op_settimeofday(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return result(syscall(SYS_settimeofday, &tv, NULL));
}

static int op_open_by_handle_at(void) {
    struct {
        struct file_handle fh;
        unsigned char bytes[128];
    } h;
    memset(&h, 0, sizeof h);
    h.fh.handle_bytes = 8;
    return result(syscall(SYS_open_by_handle_at, AT_FDCWD, &h.fh, O_RDONLY));
}

static int op_userfaultfd(void) { return result(syscall(SYS_userfaultfd, O_CLOEXEC)); }

static int op_personality(void) {
    long old = syscall(SYS_personality, 0xffffffffUL);
    long r = syscall(SYS_personality, READ_IMPLIES_EXEC);
    if (r < 0) return -errno;
    syscall(SYS_personality, old);
    return 0;
}

static int op_socket_inet(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    close(fd);
    return 0;
}

static int op_socket_unix(void) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    close(fd);
    return 0;
}

static int op_fork(void) {
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    if (pid < 0) return -errno;
    int st;
    waitpid(pid, &st, 0);
    return 0;
}

/* Several children at once, all reaped, all exited 0. */
static int op_children(void) {
    pid_t pids[4];
    for (int i = 0; i < 4; i++) {
        pids[i] = fork();
        if (pids[i] == 0) _exit(0);
        if (pids[i] < 0) return -errno;
    }
    for (int i = 0; i < 4; i++) {
        int st;
        if (waitpid(pids[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return -ECHILD;
    }
    return 0;
}

static void *thread_main(void *arg) { return arg; }

static int op_threads(void) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        int e = pthread_create(&t[i], NULL, thread_main, NULL);
        if (e) return -e;
    }
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    return 0;
}

static int listener(int port) {
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0) return -errno;
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 4) < 0) {
        int e = -errno;
        close(l);
        return e;
    }
    return l;
}

/* Listen on 127.0.0.1:PORT (0: any), connect to it, pass a byte. */
static int op_tcp(int port) {
    int l = listener(port);
    if (l < 0) return l;
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    getsockname(l, (struct sockaddr *)&a, &len);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c < 0) {
        int e = -errno;
        close(l);
        return e;
    }
    int r = 0;
    if (connect(c, (struct sockaddr *)&a, sizeof a) < 0) {
        r = -errno;
    } else {
        int s = accept(l, NULL, NULL);
        char b = 'p';
        if (s < 0 || write(c, &b, 1) != 1 || read(s, &b, 1) != 1 || b != 'p') r = -EIO;
        if (s >= 0) close(s);
    }
    close(c);
    close(l);
    return r;
}

static int op_read(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    char buf[64];
    int r = read(fd, buf, sizeof buf) < 0 ? -errno : 0;
    close(fd);
    return r;
}

static int op_write(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    int r = write(fd, "probe\n", 6) != 6 ? -errno : 0;
    close(fd);
    return r;
}

struct op {
    const char *name;
    int (*fn)(void);
};

static const struct op OPS[] = {
    {"mount", op_mount},
    {"umount2", op_umount2},
    {"unshare-user", op_unshare_user},
    {"clone-newuser", op_clone_newuser},
    {"setns", op_setns},
    {"keyctl", op_keyctl},
    {"add_key", op_add_key},
    {"bpf", op_bpf},
    {"perf_event_open", op_perf_event_open},
    {"ptrace-sibling", op_ptrace_sibling},
    {"tiocsti", op_tiocsti},
    {"tiocsti-stdin", op_tiocsti_stdin},
    {"init_module", op_init_module},
    {"kexec_load", op_kexec_load},
    {"reboot", op_reboot},
    {"swapon", op_swapon},
    {"acct", op_acct},
    {"settimeofday", op_settimeofday},
    {"open_by_handle_at", op_open_by_handle_at},
    {"userfaultfd", op_userfaultfd},
    {"personality-read-implies-exec", op_personality},
    {"socket-inet", op_socket_inet},
    {"socket-unix", op_socket_unix},
    {"fork", op_fork},
    {"children", op_children},
    {"threads", op_threads},
};

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* The pty of the tiocsti op becomes our controlling terminal; closing
     * it must not end the probe. */
    signal(SIGHUP, SIG_IGN);
    if (argc < 2) {
        fprintf(stderr, "usage: probe OP...\n  ops:");
        for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++) fprintf(stderr, " %s", OPS[i].name);
        fprintf(stderr, " tcp[:PORT] read:PATH write:PATH\n");
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        int r = -EINVAL;
        int known = 0;
        for (size_t j = 0; j < sizeof OPS / sizeof OPS[0]; j++) {
            if (strcmp(arg, OPS[j].name) == 0) {
                r = OPS[j].fn();
                known = 1;
            }
        }
        if (!known && strcmp(arg, "tcp") == 0) {
            r = op_tcp(0), known = 1;
        } else if (!known && strncmp(arg, "tcp:", 4) == 0) {
            r = op_tcp(atoi(arg + 4)), known = 1;
        } else if (!known && strncmp(arg, "read:", 5) == 0) {
            r = op_read(arg + 5), known = 1;
        } else if (!known && strncmp(arg, "write:", 6) == 0) {
            r = op_write(arg + 6), known = 1;
        }
        if (!known) {
            fprintf(stderr, "probe: unknown op %s\n", arg);
            return 2;
        }
        printf("%s: %s\n", arg, r == 0 ? "OK" : errname(-r));
    }
    return 0;
}
