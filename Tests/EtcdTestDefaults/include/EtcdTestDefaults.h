// SPDX-License-Identifier: Apache-2.0
// Linking EtcdTestDefaults into the test binary sets the suite's default parallelism when the binary
// loads (parallelism.c).
#ifndef ETCD_TEST_DEFAULTS_H
#define ETCD_TEST_DEFAULTS_H

/// 1 when the environment had no SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH and the load-time
/// default (four tests per core) was set; 0 when the caller's value was kept.
int etcd_test_default_parallelism_applied(void);

/// The cores the process may run on (its CPU affinity, as `nproc` counts them).
int etcd_test_cores(void);

#endif
