// SPDX-License-Identifier: Apache-2.0
// Runs when the test binary loads, before the swift-testing runner reads its configuration: a plain
// `swift test` then runs four tests per core at a time, as scripts/test does, instead of every test
// at once. Each integration test launches its own etcd members; all of them at once on a small
// machine starve those members, and members that answer a second late expire the tests' leases of a
// few seconds and break their bounds. A value already in the environment is kept.
#include "EtcdTestDefaults.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int applied = 0;

__attribute__((constructor)) static void etcd_test_set_default_parallelism(void) {
    if (getenv("SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH") != NULL) {
        return;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    char width[32];
    snprintf(width, sizeof(width), "%ld", (cores > 0 ? cores : 1) * 4);
    applied = setenv("SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH", width, 0) == 0;
}

int etcd_test_default_parallelism_applied(void) { return applied; }
