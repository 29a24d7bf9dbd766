#!/usr/bin/env python3
"""Checks that goload's --json output has the shape of SynodBench's BenchResult.

    check_json.py RESULT.json [RESULT.json ...]

Two references, both Swift-free:
  * the Swift source: the stored properties of BenchResult, BenchOptions, LatencySummary and
    BenchTLS in Sources/SynodBench/BenchOptions.swift (optional `T?` properties may be absent,
    every other one must be present: synthesized Decodable does not use default values);
  * fixtures/synod-bench-*.json, written by `synod bench <workload> --json` (see
    fixtures/README): a key a fixture has must be a key the source declares.

Each RESULT must have every required key, no undeclared key, and JSON types that Swift's
JSONDecoder accepts (numbers for Int/Double/UInt64, strings for enums, a string-to-int object
for `errors`). Exit status 1 with one line per problem.
"""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SWIFT = os.path.join(HERE, "..", "..", "Sources", "SynodBench", "BenchOptions.swift")
STRUCTS = ["BenchResult", "BenchOptions", "LatencySummary", "BenchTLS"]


def swift_fields(source):
    """{struct: {name: (type, optional)}} from `public var name: Type` lines of each struct."""
    fields = {}
    for struct in STRUCTS:
        match = re.search(r"public struct %s\b[^{]*\{(.*?)\n\}" % struct, source, re.S)
        if not match:
            raise SystemExit("check_json: struct %s not found in %s" % (struct, SWIFT))
        found = {}
        for name, typ in re.findall(r"^\s*public var (\w+): ([^=\n{]+?)\s*(?:=.*)?$", match.group(1), re.M):
            typ = typ.strip()
            found[name] = (typ.rstrip("?"), typ.endswith("?"))
        fields[struct] = found
    return fields


def swift_enums(source):
    """{enum: [raw values]} of the String enums BenchWorkload, BenchTarget, BenchConsistency."""
    enums = {}
    for name in ("BenchWorkload", "BenchTarget", "BenchConsistency"):
        match = re.search(r"public enum %s\b[^{]*\{(.*?)\n\}" % name, source, re.S)
        if not match:
            raise SystemExit("check_json: enum %s not found in %s" % (name, SWIFT))
        enums[name] = [raw or case for case, raw in
                       re.findall(r'^\s*case (\w+)(?: = "([^"]*)")?\s*$', match.group(1), re.M)]
    return enums


ENUMS = {}


def check_value(path, typ, value, fields, problems):
    if typ in fields:
        check_object(path, typ, value, fields, problems)
    elif typ in ("Int", "UInt64"):
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append("%s: %r is not an integer" % (path, value))
        elif typ == "UInt64" and value < 0:
            problems.append("%s: %r is negative" % (path, value))
    elif typ == "Double":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            problems.append("%s: %r is not a number" % (path, value))
    elif typ in ENUMS:  # encoded by raw value
        if value not in ENUMS[typ]:
            problems.append("%s: %r is not one of %s" % (path, value, ", ".join(ENUMS[typ])))
    elif typ == "String":
        if not isinstance(value, str):
            problems.append("%s: %r is not a string" % (path, value))
    elif typ == "[String]":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append("%s: %r is not a list of strings" % (path, value))
    elif typ == "[String: Int]":
        if not isinstance(value, dict) or not all(isinstance(v, int) for v in value.values()):
            problems.append("%s: %r is not an object of integers" % (path, value))
    else:
        problems.append("%s: no check for Swift type %s" % (path, typ))


def check_object(path, struct, value, fields, problems):
    if not isinstance(value, dict):
        problems.append("%s: not an object (%s)" % (path, struct))
        return
    declared = fields[struct]
    for name, (typ, optional) in declared.items():
        if name not in value:
            if not optional:
                problems.append("%s.%s: missing (required by %s)" % (path, name, struct))
        elif value[name] is None:
            if not optional:
                problems.append("%s.%s: null (not optional in %s)" % (path, name, struct))
        else:
            check_value("%s.%s" % (path, name), typ, value[name], fields, problems)
    for name in value:
        if name not in declared:
            problems.append("%s.%s: not a property of %s" % (path, name, struct))


def main(paths):
    with open(SWIFT) as f:
        source = f.read()
    fields = swift_fields(source)
    ENUMS.update(swift_enums(source))
    problems = []
    # The fixtures, written by synod bench itself, must agree with the source too: they keep
    # this parser honest.
    fixtures = sorted(p for p in os.listdir(os.path.join(HERE, "fixtures")) if p.endswith(".json"))
    for name in fixtures:
        with open(os.path.join(HERE, "fixtures", name)) as f:
            check_object("fixtures/" + name, "BenchResult", json.load(f), fields, problems)
    for path in paths:
        try:
            with open(path) as f:
                result = json.load(f)
        except (OSError, ValueError) as error:
            problems.append("%s: %s" % (path, error))
            continue
        check_object(path, "BenchResult", result, fields, problems)
    for problem in problems:
        print("check_json: " + problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
