/*
 * xattrs: what a process and a file carry, for the image xattr tests.
 *
 *   xattrs PATH NAME...   prints this process's capability sets (the Cap*
 *                         lines of /proc/self/status), then per NAME either
 *                         "NAME=<hex value>" or "NAME: <errno name>"
 *
 * Built statically by the test harness (programs_dir()); the tests also use
 * the binary itself as a file that carries a file capability.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>

int main(int argc, char **argv) {
    char line[256];
    FILE *status = fopen("/proc/self/status", "r");
    if (!status) {
        perror("/proc/self/status");
        return 1;
    }
    while (fgets(line, sizeof line, status))
        if (strncmp(line, "Cap", 3) == 0)
            fputs(line, stdout);
    fclose(status);
    if (argc < 2)
        return 0;
    for (int i = 2; i < argc; i++) {
        unsigned char value[512];
        ssize_t n = lgetxattr(argv[1], argv[i], value, sizeof value);
        if (n < 0) {
            printf("%s: %s\n", argv[i], strerrorname_np(errno));
            continue;
        }
        printf("%s=", argv[i]);
        for (ssize_t j = 0; j < n; j++)
            printf("%02x", value[j]);
        printf("\n");
    }
    return 0;
}
