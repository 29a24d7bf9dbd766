import Foundation
import XCTest

@testable import synod

final class ConfigFileTests: XCTestCase {
    private func assertError(
        _ text: String,
        path: String,
        format: ConfigFileFormat? = nil,
        _ expected: String,
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        do {
            let values = try ConfigFile.parse(text, path: path, format: format)
            XCTFail("parsed without error: \(values)", file: file, line: line)
        } catch {
            XCTAssertEqual(error.description, expected, file: file, line: line)
        }
    }

    // MARK: YAML

    func testYAMLEtcdStyle() throws {
        let text = """
            # This is the configuration file for the etcd server.
            ---
            name: 'n1'
            data-dir: /var/lib/synod/n1   # where the WAL lives
            listen-client-urls: http://127.0.0.1:2379
            initial-cluster: "n1=http://10.0.0.1:2380,n2=http://10.0.0.2:2380"
            initial-cluster-state: new
            heartbeat-interval: 100
            election_timeout: 1000
            strict-reconfig-check: True
            initial-cluster-token:
            empty-quoted: ""
            hash: "a # not a comment"
            url-with-fragment: http://x/#frag
            """
        let values = try ConfigFile.parse(text, path: "/etc/synod/n1.yaml")
        XCTAssertEqual(values, [
            "name": "n1",
            "data-dir": "/var/lib/synod/n1",
            "listen-client-urls": "http://127.0.0.1:2379",
            "initial-cluster": "n1=http://10.0.0.1:2380,n2=http://10.0.0.2:2380",
            "initial-cluster-state": "new",
            "heartbeat-interval": "100",
            "election-timeout": "1000",
            "strict-reconfig-check": "true",
            "initial-cluster-token": "",
            "empty-quoted": "",
            "hash": "a # not a comment",
            "url-with-fragment": "http://x/#frag",
        ])
    }

    func testYAMLQuotingAndEscapes() throws {
        let text = """
            a: "tab\\there \\"q\\" \\u00e9"
            b: 'it''s'
            c: "x: y"
            "d": 1
            e: [http://a:1, "http://b:2"]
            f: ~
            """
        let values = try ConfigFile.parseYAML(text, path: "c.yml")
        XCTAssertEqual(values["a"], "tab\there \"q\" é")
        XCTAssertEqual(values["b"], "it's")
        XCTAssertEqual(values["c"], "x: y")
        XCTAssertEqual(values["d"], "1")
        XCTAssertEqual(values["e"], "http://a:1,http://b:2")
        XCTAssertEqual(values["f"], "")
    }

    func testYAMLErrorsHaveLineNumbers() {
        assertError("name: n1\njust text\n", path: "config.yaml", "config.yaml:2: expected 'key: value'")
        assertError(
            "name: n1\nclient-transport-security:\n  cert-file: a\n",
            path: "config.yaml",
            "config.yaml:3: nested values are not supported; expected 'key: value' at the start of the line"
        )
        assertError("# c\n\nname: \"n1\n", path: "config.yaml", "config.yaml:3: unterminated quoted string")
        assertError("name: a\nname: b\n", path: "c.yml", "c.yml:2: duplicate key 'name'")
        assertError("x: \"a\" b\n", path: "c.yml", "c.yml:1: unexpected text after quoted value: 'b'")
        assertError("x: |\n", path: "c.yml", "c.yml:1: multi-line strings are not supported")
        assertError("- a\n", path: "c.yml", "c.yml:1: lists are not supported here; expected 'key: value'")
        assertError("x: \"\\q\"\n", path: "c.yml", "c.yml:1: unknown escape sequence '\\q'")
    }

    // MARK: TOML

    func testTOMLValues() throws {
        let text = """
            # Synod node n1
            name = "n1"
            data_dir = '/var/lib/synod/n1'   # literal string
            heartbeat-interval = 100
            election-timeout = 1_000
            snapshot-ratio = 0.5
            strict = true
            listen-client-urls = ["http://127.0.0.1:2379", "http://10.0.0.1:2379"]
            escaped = "a\\\\b \\"c\\" # d"
            """
        let values = try ConfigFile.parse(text, path: "n1.toml")
        XCTAssertEqual(values, [
            "name": "n1",
            "data-dir": "/var/lib/synod/n1",
            "heartbeat-interval": "100",
            "election-timeout": "1000",
            "snapshot-ratio": "0.5",
            "strict": "true",
            "listen-client-urls": "http://127.0.0.1:2379,http://10.0.0.1:2379",
            "escaped": #"a\b "c" # d"#,
        ])
    }

    func testTOMLErrorsHaveLineNumbers() {
        assertError("name = \"n1\"\n\nname\n", path: "config.toml", "config.toml:3: expected 'key = value'")
        assertError("[server]\n", path: "config.toml", "config.toml:1: tables are not supported; the config file is flat 'key = value' lines")
        assertError("name = n1\n", path: "config.toml", "config.toml:1: expected a quoted string, number or boolean, got 'n1'")
        assertError("a = 1\na = 2\n", path: "config.toml", "config.toml:2: duplicate key 'a'")
        assertError("a = \"x\" y\n", path: "config.toml", "config.toml:1: unexpected text after value: 'y'")
        assertError("a = \"x\n", path: "config.toml", "config.toml:1: unterminated quoted string")
        assertError("a = [1, 2\n", path: "config.toml", "config.toml:1: unterminated array; expected ']'")
        assertError("a =\n", path: "config.toml", "config.toml:1: expected a value after '='")
        assertError(" = 1\n", path: "config.toml", "config.toml:1: expected 'key = value'")
    }

    func testCRLFLineEndings() throws {
        XCTAssertEqual(try ConfigFile.parse("a = 1\r\nb = \"x\"\r\n", path: "w.toml"), ["a": "1", "b": "x"])
        XCTAssertEqual(try ConfigFile.parse("a: 1\r\nb: x\r\n", path: "w.yaml"), ["a": "1", "b": "x"])
    }

    // MARK: Format detection

    func testFormatDetection() throws {
        XCTAssertEqual(ConfigFile.detectFormat(path: "a.YAML", text: "x = 1"), .yaml)
        XCTAssertEqual(ConfigFile.detectFormat(path: "a.yml", text: ""), .yaml)
        XCTAssertEqual(ConfigFile.detectFormat(path: "a.toml", text: "x: 1"), .toml)
        XCTAssertEqual(ConfigFile.detectFormat(path: "synod.conf", text: "# c\n\nname = \"n1\""), .toml)
        XCTAssertEqual(ConfigFile.detectFormat(path: "synod.conf", text: "# c\nname: n1"), .yaml)
        XCTAssertEqual(ConfigFile.detectFormat(path: "synod.conf", text: "url: http://a?b=c"), .yaml)
        XCTAssertEqual(ConfigFile.detectFormat(path: "synod.conf", text: "url = \"http://a\""), .toml)
        XCTAssertEqual(try ConfigFile.parse("name = \"n1\"", path: "conf"), ["name": "n1"])
        XCTAssertEqual(try ConfigFile.parse("name: n1", path: "conf"), ["name": "n1"])
    }

    func testLoadFromDisk() throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("synod-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("n1.toml").path
        try Data("name = \"n1\"\nbogus\n".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try ConfigFile.load(path: path)) { error in
            XCTAssertEqual("\(error)", "\(path):2: expected 'key = value'")
        }
        try Data("name = \"n1\"\n".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try ConfigFile.load(path: path), ["name": "n1"])

        let missing = directory.appendingPathComponent("missing.yaml").path
        XCTAssertThrowsError(try ConfigFile.load(path: missing)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(missing): cannot read config file"), "\(error)")
        }
    }

    // MARK: Keys and arguments

    func testUnknownKeySuggestion() throws {
        let allowed: Set<String> = ["name", "data-dir", "listen-client-urls", "heartbeat-interval", "initial-cluster"]
        XCTAssertNoThrow(try ConfigFile.validate(["name": "n1", "data-dir": "d"], allowedKeys: allowed, path: "c.yaml"))
        XCTAssertThrowsError(
            try ConfigFile.validate(["name": "n1", "hearbeat-interval": "100"], allowedKeys: allowed, path: "c.yaml")
        ) { error in
            XCTAssertEqual("\(error)", "c.yaml: unknown key 'hearbeat-interval'; did you mean 'heartbeat-interval'?")
        }
        XCTAssertThrowsError(
            try ConfigFile.validate(["quota-backend-bytes": "1"], allowedKeys: allowed, path: "c.yaml")
        ) { error in
            XCTAssertEqual("\(error)", "c.yaml: unknown key 'quota-backend-bytes'")
        }
        XCTAssertEqual(ConfigFile.suggestion(for: "datadir", among: allowed), "data-dir")
        XCTAssertEqual(ConfigFile.editDistance("kitten", "sitting"), 3)
        XCTAssertEqual(ConfigFile.editDistance("", "abc"), 3)
        XCTAssertEqual(ConfigFile.normalizeKey("Data_Dir"), "data-dir")
    }

    func testArgumentsAndMergeExplicitWins() throws {
        let values = [
            "name": "n1",
            "data-dir": "/d",
            "debug": "true",
            "strict": "false",
            "fsync": "false",
        ]
        XCTAssertEqual(
            try ConfigFile.arguments(from: values, booleanFlags: ["debug", "strict"], invertibleFlags: ["fsync"]),
            ["--data-dir", "/d", "--debug", "--no-fsync", "--name", "n1"]
        )
        let explicit = ["--name=n9", "--no-fsync", "--peer-urls", "http://a"]
        XCTAssertEqual(
            ConfigFile.explicitKeys(in: explicit + ["--", "--data-dir"], invertibleFlags: ["fsync"]),
            ["name", "fsync", "peer-urls"]
        )
        XCTAssertEqual(
            try ConfigFile.merge(
                fileValues: values,
                into: explicit,
                booleanFlags: ["debug", "strict"],
                invertibleFlags: ["fsync"],
                path: "c.toml"
            ),
            ["--data-dir", "/d", "--debug", "--name=n9", "--no-fsync", "--peer-urls", "http://a"]
        )
        XCTAssertThrowsError(
            try ConfigFile.arguments(from: ["debug": "maybe"], booleanFlags: ["debug"], path: "c.toml")
        ) { error in
            XCTAssertEqual("\(error)", "c.toml: 'debug' must be true or false, got 'maybe'")
        }
    }
}
