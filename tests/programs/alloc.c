/* Allocate and touch memory 1 MiB at a time until refused, forever. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    for (;;) {
        char *p = malloc(1 << 20);
        if (!p) {
            write(2, "alloc: out of memory\n", 21);
            return 3;
        }
        memset(p, 1, 1 << 20);
    }
}
