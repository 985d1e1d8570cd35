// SPDX-License-Identifier: Apache-2.0
public import FoundationEssentials

/// A value usable as an etcd key or value: etcd stores bytes, and these types convert to them.
///
/// `String` (its UTF-8 bytes), `Substring`, `[UInt8]`, `ArraySlice<UInt8>` and `Data` conform.
public protocol EtcdBytes: Sendable {
    /// The bytes etcd stores for this value.
    var etcdData: Data { get }
}

extension String: EtcdBytes {
    public var etcdData: Data {
        // Copied from the contiguous UTF-8 (Data's generic initializer casts dynamically first).
        var string = self
        return string.withUTF8 { Data(buffer: $0) }
    }
}

extension Substring: EtcdBytes {
    public var etcdData: Data {
        var string = self
        return string.withUTF8 { Data(buffer: $0) }
    }
}

extension Array: EtcdBytes where Element == UInt8 {
    public var etcdData: Data { Data(self) }
}

extension ArraySlice: EtcdBytes where Element == UInt8 {
    public var etcdData: Data { Data(self) }
}

extension Data: EtcdBytes {
    public var etcdData: Data { self }
}

extension Data {
    /// The bytes decoded as UTF-8, with invalid sequences replaced.
    var etcdString: String { String(decoding: self, as: UTF8.self) }
}

/// Range arithmetic on etcd keys.
public enum EtcdKeys {
    /// The smallest key greater than every key starting with `prefix` (Go's `GetPrefixRangeEnd`);
    /// `[0]` ("to the end of the keyspace") when no such key exists (the prefix is empty or all 0xff).
    public static func prefixEnd(_ prefix: Data) -> Data {
        var end = [UInt8](prefix)
        while let last = end.last {
            if last < 0xff {
                end[end.count - 1] = last + 1
                return Data(end)
            }
            end.removeLast()
        }
        return Data([0])
    }
}
