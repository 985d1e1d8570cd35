// SPDX-License-Identifier: Apache-2.0
import EtcdTestDefaults
import Foundation
import Testing

@Suite("Test defaults")
struct TestDefaultsTests {
    @Test("the test binary runs four tests per core at a time unless its environment sets the width")
    func parallelism() throws {
        let value = try #require(
            ProcessInfo.processInfo.environment["SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH"],
            "EtcdTestDefaults is not linked into the test binary, or its load-time default did not run"
        )
        if etcd_test_default_parallelism_applied() == 1 {
            #expect(value == String(4 * etcd_test_cores()))
            #expect(etcd_test_cores() >= 1 && etcd_test_cores() <= sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        }
    }
}
