/* A setuid probe for the privilege tests: prints the ids it runs with.
 * Unlike busybox, which drops a setuid bit by itself for most applets,
 * this reports exactly what the kernel gave it on exec. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    printf("uid=%u euid=%u\n", (unsigned)getuid(), (unsigned)geteuid());
    return 0;
}
