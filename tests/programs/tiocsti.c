/* Try to push a command into the terminal on fds 0-2 with TIOCSTI, the
 * classic escape from a sandbox that shares the user's terminal: the
 * injected characters would be read by the user's shell after exit.
 * Prints, per fd, "N:tty-injected", "N:tty-refused:<errno>" or "N:not-tty". */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(void) {
    const char *cmd = "echo INJECTED\n";
    for (int fd = 0; fd < 3; fd++) {
        if (!isatty(fd)) {
            printf("%d:not-tty\n", fd);
            continue;
        }
        int ok = 1;
        for (const char *c = cmd; *c; c++) {
            if (ioctl(fd, TIOCSTI, c) != 0) {
                printf("%d:tty-refused:%s\n", fd, strerror(errno));
                ok = 0;
                break;
            }
        }
        if (ok)
            printf("%d:tty-injected\n", fd);
    }
    return 0;
}
