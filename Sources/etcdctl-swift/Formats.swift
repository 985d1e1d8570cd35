// SPDX-License-Identifier: Apache-2.0
import Foundation

/// A JSON value written as Go's encoding/json writes it: fields in the order given, no spaces,
/// `<`, `>` and `&` escaped, bytes in base64.
enum JSON: Sendable {
    case object([(String, JSON)])
    case array([JSON])
    case string(String)
    case number(String)
    case bool(Bool)
    case null

    static func int<Number: BinaryInteger>(_ value: Number) -> JSON { .number("\(value)") }
    static func bytes(_ value: some Collection<UInt8>) -> JSON { .string(Data(value).base64EncodedString()) }

    var rendered: String {
        switch self {
        case .object(let fields):
            return "{" + fields.map { JSON.quoted($0.0) + ":" + $0.1.rendered }.joined(separator: ",") + "}"
        case .array(let values): return "[" + values.map(\.rendered).joined(separator: ",") + "]"
        case .string(let text): return JSON.quoted(text)
        case .number(let text): return text
        case .bool(let value): return value ? "true" : "false"
        case .null: return "null"
        }
    }

    private static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "<", ">", "&", "\u{2028}", "\u{2029}":
                out += "\\u" + String(scalar.value, radix: 16).leftPadded(to: 4)
            default:
                if scalar.value < 0x20 {
                    out += "\\u" + String(scalar.value, radix: 16).leftPadded(to: 4)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// Builds a JSON object leaving out zero values, as Go's `omitempty` does.
struct JSONFields {
    private(set) var fields: [(String, JSON)] = []

    mutating func always(_ name: String, _ value: JSON) { self.fields.append((name, value)) }
    mutating func int<Number: BinaryInteger>(_ name: String, _ value: Number) {
        if value != 0 { self.fields.append((name, .int(value))) }
    }
    mutating func bool(_ name: String, _ value: Bool) { if value { self.fields.append((name, .bool(true))) } }
    mutating func string(_ name: String, _ value: String) {
        if !value.isEmpty { self.fields.append((name, .string(value))) }
    }
    mutating func bytes(_ name: String, _ value: some Collection<UInt8>) {
        if !value.isEmpty { self.fields.append((name, .bytes(value))) }
    }
    mutating func array(_ name: String, _ values: [JSON]) {
        if !values.isEmpty { self.fields.append((name, .array(values))) }
    }
    mutating func object(_ name: String, _ value: JSON?) { if let value { self.fields.append((name, value)) } }

    var json: JSON { .object(self.fields) }

    /// An object of one optional field.
    static func with(_ name: String, _ value: JSON?) -> JSON {
        var fields = JSONFields()
        fields.object(name, value)
        return fields.json
    }
}

/// Go's `%q` of a string's bytes: printable UTF-8 as it is, the rest escaped.
func goQuoted(_ bytes: some Collection<UInt8>) -> String {
    var out = "\""
    let array = Array(bytes)
    var position = 0
    while position < array.count {
        let byte = array[position]
        if byte < 0x80 {
            switch byte {
            case 0x22: out += "\\\""
            case 0x5c: out += "\\\\"
            case 0x07: out += "\\a"
            case 0x08: out += "\\b"
            case 0x0c: out += "\\f"
            case 0x0a: out += "\\n"
            case 0x0d: out += "\\r"
            case 0x09: out += "\\t"
            case 0x0b: out += "\\v"
            case 0x20...0x7e: out.unicodeScalars.append(Unicode.Scalar(byte))
            default: out += "\\x" + String(byte, radix: 16).leftPadded(to: 2)
            }
            position += 1
            continue
        }
        // A multi-byte sequence: kept when it decodes to a printable scalar, escaped byte by byte when not.
        let length = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1
        if length > 1, position + length <= array.count,
            let decoded = String(validating: array[position..<position + length], as: UTF8.self),
            let scalar = decoded.unicodeScalars.first,
            scalar.properties.generalCategory != .control, scalar.properties.generalCategory != .format,
            scalar.properties.generalCategory != .unassigned
        {
            out += decoded
            position += length
        } else {
            out += "\\x" + String(byte, radix: 16).leftPadded(to: 2)
            position += 1
        }
    }
    return out + "\""
}

func goQuoted(_ text: String) -> String { goQuoted(Array(text.utf8)) }

/// A table as etcdctl's tablewriter draws it: headers upper-cased and centred, cells right-aligned.
func renderTable(header: [String], rows: [[String]]) -> String {
    let titles = header.map { $0.uppercased() }
    var widths = titles.map(\.count)
    for row in rows {
        for (column, cell) in row.enumerated() { widths[column] = max(widths[column], cell.count) }
    }
    let rule = "+" + widths.map { String(repeating: "-", count: $0 + 2) + "+" }.joined()
    func centred(_ text: String, _ width: Int) -> String {
        let gap = width - text.count
        return String(repeating: " ", count: gap / 2) + text + String(repeating: " ", count: gap - gap / 2)
    }
    func right(_ text: String, _ width: Int) -> String { String(repeating: " ", count: width - text.count) + text }
    var lines = [rule]
    lines.append("|" + titles.enumerated().map { " " + centred($1, widths[$0]) + " |" }.joined())
    lines.append(rule)
    for row in rows { lines.append("|" + row.enumerated().map { " " + right($1, widths[$0]) + " |" }.joined()) }
    lines.append(rule)
    return lines.joined(separator: "\n") + "\n"
}

/// go-humanize's `Bytes`: SI units, one decimal below 10.
func humanizedBytes(_ size: Int64) -> String {
    if size < 10 { return "\(size) B" }
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]
    let exponent = Int((log(Double(size)) / log(1000)).rounded(.down))
    let value = (Double(size) / pow(1000, Double(exponent)) * 10 + 0.5).rounded(.down) / 10
    return String(format: value < 10 ? "%.1f %@" : "%.0f %@", value, units[exponent])
}

/// Go's `time.Duration.String()` for a duration, e.g. `1.234567ms`, `2.5s`.
func goDuration(_ duration: Duration) -> String {
    let nanoseconds =
        duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
    if nanoseconds < 1000 { return "\(nanoseconds)ns" }
    func trimmed(_ value: Double, _ digits: Int) -> String {
        var text = String(format: "%.\(digits)f", value)
        while text.contains("."), text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }
    if nanoseconds < 1_000_000 { return trimmed(Double(nanoseconds) / 1e3, 3) + "µs" }
    if nanoseconds < 1_000_000_000 { return trimmed(Double(nanoseconds) / 1e6, 6) + "ms" }
    return trimmed(Double(nanoseconds) / 1e9, 9) + "s"
}

extension String {
    func leftPadded(to width: Int) -> String {
        self.count >= width ? self : String(repeating: "0", count: width - self.count) + self
    }
}
