// SPDX-License-Identifier: Apache-2.0
// Runs when the test binary loads, before the swift-testing runner reads its configuration: a plain
// `swift test` then runs four tests per core at a time, as scripts/test does, instead of every test
// at once. Each integration test launches its own etcd members; all of them at once on a small
// machine starve those members, and members that answer a second late expire the tests' leases of a
// few seconds and break their bounds. A value already in the environment is kept.
#define _GNU_SOURCE
#include "EtcdTestDefaults.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int applied = 0;

int etcd_test_cores(void) {
    // The cores this process may run on, as nproc counts them (a container's CPU set, not the host's).
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
        return CPU_COUNT(&set);
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? (int)online : 1;
}

__attribute__((constructor)) static void etcd_test_set_default_parallelism(void) {
    if (getenv("SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH") != NULL) {
        return;
    }
    char width[32];
    snprintf(width, sizeof(width), "%d", etcd_test_cores() * 4);
    applied = setenv("SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH", width, 0) == 0;
}

int etcd_test_default_parallelism_applied(void) { return applied; }
