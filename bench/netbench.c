/* A tiny TCP benchmark for bench/net.sh, built static so it runs in a
 * busybox image as on the host:
 *
 *   netbench serve PORT            serve connections one after another
 *   netbench ping HOST PORT N      N connections, each connect + 1-byte
 *                                  round trip + close; prints the median
 *                                  and 90th percentile in microseconds
 *   netbench push HOST PORT SECS   send for SECS seconds; prints the Mbit/s
 *                                  the server received (iperf3's stand-in)
 *
 * The first byte a client sends says what it wants: 'p' an echo of one
 * byte, 's' a sink that answers with the byte count at EOF.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char buf[1 << 17];

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* HOST is a numeric IPv4 or IPv6 address (a static binary has no NSS). */
static int dial(const char *host, const char *port) {
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(atoi(port))};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(atoi(port))};
    struct sockaddr *sa = (struct sockaddr *)&a4;
    socklen_t len = sizeof a4;
    if (inet_pton(AF_INET, host, &a4.sin_addr) != 1) {
        if (inet_pton(AF_INET6, host, &a6.sin6_addr) != 1) {
            fprintf(stderr, "netbench: %s is not an IP address\n", host);
            exit(1);
        }
        sa = (struct sockaddr *)&a6;
        len = sizeof a6;
    }
    int fd = socket(sa->sa_family, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    if (connect(fd, sa, len) < 0) die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static _Noreturn void serve(int port) {
    int ls = socket(AF_INET6, SOCK_STREAM, 0), one = 1, zero = 0;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(ls, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (listen(ls, 64) < 0) die("listen");
    printf("listening\n");
    fflush(stdout);
    for (;;) {
        int c = accept(ls, NULL, NULL);
        if (c < 0) continue;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char mode;
        if (read(c, &mode, 1) == 1) {
            if (mode == 'p') {
                (void)!write(c, &mode, 1);
            } else {
                uint64_t total = 0;
                ssize_t n;
                while ((n = read(c, buf, sizeof buf)) > 0) total += n;
                (void)!write(c, &total, sizeof total);
            }
        }
        close(c);
    }
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int ping(const char *host, const char *port, int n) {
    double *t = calloc(n, sizeof *t);
    for (int i = 0; i < n; i++) {
        double t0 = now();
        int fd = dial(host, port);
        char b = 'p';
        if (write(fd, &b, 1) != 1 || read(fd, &b, 1) != 1) {
            fprintf(stderr, "netbench: no echo from %s:%s\n", host, port);
            return 1;
        }
        t[i] = (now() - t0) * 1e6;
        close(fd);
    }
    qsort(t, n, sizeof *t, cmp);
    printf("%.0f %.0f\n", t[n / 2], t[n * 9 / 10]);
    return 0;
}

static int push(const char *host, const char *port, double secs) {
    int fd = dial(host, port);
    char mode = 's';
    if (write(fd, &mode, 1) != 1) die("write");
    memset(buf, 'x', sizeof buf);
    double t0 = now(), end = t0 + secs;
    while (now() < end) {
        if (write(fd, buf, sizeof buf) < 0) die("write");
    }
    shutdown(fd, SHUT_WR);
    uint64_t total = 0;
    if (read(fd, &total, sizeof total) != sizeof total) {
        fprintf(stderr, "netbench: no byte count from %s:%s\n", host, port);
        return 1;
    }
    printf("%.0f\n", total * 8 / (now() - t0) / 1e6);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "serve")) serve(atoi(argv[2]));
    if (argc == 5 && !strcmp(argv[1], "ping")) return ping(argv[2], argv[3], atoi(argv[4]));
    if (argc == 5 && !strcmp(argv[1], "push")) return push(argv[2], argv[3], atof(argv[4]));
    fprintf(stderr, "usage: netbench serve PORT | ping HOST PORT N | push HOST PORT SECS\n");
    return 2;
}
