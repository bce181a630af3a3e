/* orphans PROGRAM [ARG...]: run PROGRAM as a subreaper would, and say
 * which processes it left behind for its reaper once it exited.
 *
 * Prints PROGRAM's wait status, then one line per orphan adopted and
 * reaped here: "orphan init" for a process that was pid 1 of a pid
 * namespace of its own (its NSpid has two or more numbers), "orphan
 * other" for any other. Waits until every orphan has exited, so a
 * caller counts them without waiting on time. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* Whether zombie `pid` (not yet reaped) was a pid namespace's init. */
static int was_namespace_init(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int init = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "NSpid:", 6) == 0) {
            char *last = strrchr(line, '\t');
            init = last && strtol(last + 1, NULL, 10) == 1 && last != line + 6;
        }
    }
    fclose(f);
    return init;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: orphans PROGRAM [ARG...]\n");
        return 2;
    }
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        perror("prctl");
        return 2;
    }
    pid_t child = fork();
    if (child == 0) {
        execvp(argv[1], argv + 1);
        perror("execvp");
        _exit(127);
    }
    for (;;) {
        siginfo_t info;
        memset(&info, 0, sizeof info);
        if (waitid(P_ALL, 0, &info, WEXITED | WNOWAIT) != 0)
            break; /* ECHILD: nobody left */
        pid_t pid = info.si_pid;
        int init = pid == child ? 0 : was_namespace_init(pid);
        int status;
        waitpid(pid, &status, 0);
        if (pid == child)
            printf("status %d\n", status);
        else
            printf("orphan %s\n", init == 1 ? "init" : "other");
        fflush(stdout);
    }
    return 0;
}
