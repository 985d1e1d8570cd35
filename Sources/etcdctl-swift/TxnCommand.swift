// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Etcd
import Foundation

/// `txn [options]`: compares, then the success requests, then the failure requests, read from
/// standard input in etcdctl's format, each block ended by an empty line.
struct Txn: EtcdctlCommand {
    static let configuration = CommandConfiguration(
        abstract: "Txn processes all the requests in one transaction")

    @Flag(name: .shortAndLong, help: "Input transaction in interactive mode") var interactive = false
    @Argument var arguments: [String] = []

    func run(_ global: GlobalOptions) async throws {
        guard self.arguments.isEmpty else { throw UsageError("txn command does not accept argument") }
        var input = LineReader()
        self.prompt("compares:")
        let compares = try input.block(TxnParser.compare)
        self.prompt("success requests (get, put, del):")
        let success = try input.block(TxnParser.request)
        self.prompt("failure requests (get, put, del):")
        let failure = try input.block(TxnParser.request)
        let response = try await global.withClient { client in
            try await client.txn(if: compares, then: success, else: failure)
        }
        try global.printer.txn(response)
    }

    private func prompt(_ text: String) { if self.interactive { Printer.line(text) } }
}

/// Reads standard input a line at a time, as etcdctl's bufio reader does: a last line without a
/// newline is an error (`EOF`), exit code 3.
struct LineReader {
    mutating func line() throws -> String {
        guard let line = Swift.readLine(strippingNewline: false), line.hasSuffix("\n") else {
            throw ExitError(EtcdctlExit.invalidInput, "EOF")
        }
        return String(line.dropLast())
    }

    /// Lines up to the next empty one, trimmed, each parsed as soon as it is read.
    mutating func block<Element>(_ parse: (String) throws -> Element) throws -> [Element] {
        var elements: [Element] = []
        while true {
            let line = try self.line().trimmingCharacters(in: .whitespaces)
            if line.isEmpty { return elements }
            elements.append(try parse(line))
        }
    }
}

/// etcdctl's txn grammar: `target("key") op "value"` compares and `get`/`put`/`del` command lines.
enum TxnParser {
    static func compare(_ line: String) throws -> EtcdCompare {
        guard let paren = line.firstIndex(of: "(") else {
            throw ExitError(EtcdctlExit.invalidInput, "malformed comparison: \(line)")
        }
        let target = String(line[..<paren])
        // As Go's Sscanf("%q) %s %q"): stop at the first part that does not match.
        var rest = Substring(line[line.index(after: paren)...])
        var (key, op, value) = ("", "", "")
        var matched = false
        if let quotedKey = Self.quoted(&rest) {
            key = quotedKey
            if rest.hasPrefix(") ") {
                rest = rest.dropFirst(2).drop(while: { $0 == " " })
                op = String(rest.prefix(while: { $0 != " " }))
                rest = rest.dropFirst(op.count).drop(while: { $0 == " " })
                if !op.isEmpty, let quotedValue = Self.quoted(&rest) {
                    value = quotedValue
                    matched = true
                }
            }
        }
        guard matched else {
            throw ExitError(
                EtcdctlExit.invalidInput,
                "malformed comparison: \(line); got \(target)(\(goQuoted(key))) \(op) \(goQuoted(value))")
        }
        let invalid = ExitError(EtcdctlExit.invalidInput, "invalid txn compare request: \(line)")
        func number(_ target: EtcdCompare.NumberTarget) throws -> EtcdCompare {
            guard let number = Int64(value) else { throw invalid }
            switch op {
            case "=": return target == number
            case "!=": return target != number
            case "<": return target < number
            case ">": return target > number
            default: throw invalid
            }
        }
        switch target {
        case "ver", "version": return try number(EtcdCompare.version(key))
        case "c", "create": return try number(EtcdCompare.createRevision(key))
        case "m", "mod": return try number(EtcdCompare.modRevision(key))
        case "lease": return try number(EtcdCompare.lease(key))
        case "val", "value":
            let target = EtcdCompare.value(key)
            switch op {
            case "=": return target == value
            case "!=": return target != value
            case "<": return target < value
            case ">": return target > value
            default: throw invalid
            }
        default:
            throw ExitError(EtcdctlExit.invalidInput, "malformed comparison: \(line) (unknown target \(target))")
        }
    }

    static func request(_ line: String) throws -> EtcdOp {
        let arguments = argify(line)
        guard arguments.count >= 2 else {
            throw ExitError(EtcdctlExit.invalidInput, "invalid txn compare request: \(line)")
        }
        let invalid = ExitError(EtcdctlExit.invalidInput, "invalid txn request: \(line)")
        let rest = Array(arguments.dropFirst())
        do {
            switch arguments[0] {
            case "get":
                let (key, options, _) = try Get.parse(try pflagForms(rest, parse: { _ = try Get.parse($0) })).request()
                return .get(key, options: options)
            case "put":
                let (key, value, options) = try Put.parse(try pflagForms(rest, parse: { _ = try Put.parse($0) }))
                    .request()
                return .put(key, value: value, options: options)
            case "del":
                let (key, options, _) = try Del.parse(try pflagForms(rest, parse: { _ = try Del.parse($0) })).request()
                return .delete(key, options: options)
            default: throw invalid
            }
        } catch let error as UsageError {
            throw error
        } catch let error as FeatureError {
            throw error
        } catch {
            throw invalid
        }
    }

    /// A Go-quoted string (`"..."` with escapes, or a back-quoted one) at the start of `text`.
    static func quoted(_ text: inout Substring) -> String? {
        if text.first == "`" {
            guard let end = text.dropFirst().firstIndex(of: "`") else { return nil }
            let value = String(text[text.index(after: text.startIndex)..<end])
            text = text[text.index(after: end)...]
            return value
        }
        guard text.first == "\"" else { return nil }
        var bytes: [UInt8] = []
        var index = text.index(after: text.startIndex)
        while index < text.endIndex {
            let character = text[index]
            if character == "\"" {
                text = text[text.index(after: index)...]
                return String(decoding: bytes, as: UTF8.self)
            }
            if character == "\\" {
                index = text.index(after: index)
                guard index < text.endIndex else { return nil }
                switch text[index] {
                case "n": bytes.append(0x0a)
                case "t": bytes.append(0x09)
                case "r": bytes.append(0x0d)
                case "\\": bytes.append(0x5c)
                case "\"": bytes.append(0x22)
                case "x":
                    let hex = text[text.index(after: index)...].prefix(2)
                    guard hex.count == 2, let byte = UInt8(hex, radix: 16) else { return nil }
                    bytes.append(byte)
                    index = text.index(index, offsetBy: 2)
                default: return nil
                }
            } else {
                bytes.append(contentsOf: Array(String(character).utf8))
            }
            index = text.index(after: index)
        }
        return nil
    }
}

/// etcdctl's argify: words split at spaces, where `"..."` (Go-quoted) and `'...'` are one word each.
func argify(_ line: String) -> [String] {
    var words: [String] = []
    var rest = Substring(line)
    while true {
        rest = rest.drop(while: { $0.isWhitespace })
        guard let first = rest.first else { return words }
        if first == "\"" {
            var copy = rest
            if let word = TxnParser.quoted(&copy) {
                words.append(word)
                rest = copy
                continue
            }
        }
        if first == "'", let end = rest.dropFirst().firstIndex(of: "'") {
            words.append(String(rest[rest.index(after: rest.startIndex)..<end]))
            rest = rest[rest.index(after: end)...]
            continue
        }
        let word = rest.prefix(while: { !$0.isWhitespace })
        words.append(String(word))
        rest = rest.dropFirst(word.count)
    }
}
