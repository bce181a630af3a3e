// spawn: start a command N times, W at a time, as a judge's worker pool
// does (posix_spawn, no shell between), and print the nanoseconds from the
// first start to the last exit and how many runs failed (exit status not
// 0, or killed). bench/judge.sh times every sandbox with it.
//
//   spawn N W [VAR=value ...] [FD<path ...] command [argument ...]
//
// VAR=value (a shell variable's name): set in each run's environment.
// FD<path (FD in digits): each run gets path opened read-only on
// descriptor FD (bwrap's --add-seccomp-fd reads its descriptor to the end,
// so a descriptor shared by the runs would not do). "--" ends them. Each
// run's standard input, output and error are /dev/null, alike for every
// sandbox.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long count(const char *s, const char *what) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > 100000000) {
        fprintf(stderr, "spawn: %s must be a whole number from 1 to 100000000, not %s\n", what, s);
        exit(2);
    }
    return v;
}

// NAME=value with NAME a shell variable's name.
static int assignment(const char *s) {
    const char *eq = strchr(s, '=');
    if (!eq || eq == s || (s[0] >= '0' && s[0] <= '9'))
        return 0;
    for (const char *c = s; c < eq; c++)
        if (!(*c == '_' || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
            return 0;
    return 1;
}

static void die(const char *what, int err) {
    fprintf(stderr, "spawn: %s: %s\n", what, strerror(err));
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: spawn N W [VAR=value ...] [FD<path ...] command [argument ...]\n");
        return 2;
    }
    long n = count(argv[1], "N");
    long w = count(argv[2], "W");
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    // Assignments first: getenv finds the first of equal names.
    char **envp = calloc(nenv + (size_t)argc + 1, sizeof *envp);
    if (!envp)
        die("calloc", errno);
    size_t e = 0;
    posix_spawn_file_actions_t fa;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc)
        die("file actions", rc);
    if ((rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)) ||
        (rc = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0)) ||
        (rc = posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0)))
        die("file actions", rc);
    int i = 3;
    for (; i < argc; i++) {
        char *lt = strchr(argv[i], '<');
        if (!strcmp(argv[i], "--")) {
            i++;
            break;
        } else if (lt && lt != argv[i] && strspn(argv[i], "0123456789") == (size_t)(lt - argv[i])) {
            // Open once here, to name a missing file before any run.
            int fd = open(lt + 1, O_RDONLY);
            if (fd < 0)
                die(lt + 1, errno);
            close(fd);
            if ((rc = posix_spawn_file_actions_addopen(&fa, atoi(argv[i]), lt + 1, O_RDONLY, 0)))
                die(argv[i], rc);
        } else if (assignment(argv[i])) {
            envp[e++] = argv[i];
        } else {
            break;
        }
    }
    if (i == argc) {
        fprintf(stderr, "spawn: no command\n");
        return 2;
    }
    for (size_t k = 0; k < nenv; k++)
        envp[e++] = environ[k];
    char **cmd = argv + i;

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long started = 0, running = 0, failed = 0;
    while (started < n || running > 0) {
        while (started < n && running < w) {
            pid_t pid;
            if ((rc = posix_spawnp(&pid, cmd[0], &fa, NULL, cmd, envp)))
                die(cmd[0], rc);
            started++;
            running++;
        }
        int status;
        if (wait(&status) < 0)
            die("wait", errno);
        running--;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long long ns = (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    printf("%lld %ld\n", ns, failed);
    return 0;
}
