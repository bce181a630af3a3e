/* The smallest honest workload: print a line, exit with argv[1] or 0. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    puts("hello");
    return argc > 1 ? atoi(argv[1]) : 0;
}
