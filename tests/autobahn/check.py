#!/usr/bin/env python3
"""Checks an Autobahn fuzzingclient report against the expected results.

usage: check.py REPORT_DIR EXPECTED_JSON

EXPECTED_JSON maps each case id to the behaviour it must at least reach ("OK", "NON-STRICT",
"INFORMATIONAL" or "UNIMPLEMENTED"). The run fails when a case is missing from the report, a
case's behaviour or close behaviour is a failure (FAILED, WRONG CODE, UNCLEAN, ...), or a case
does worse than expected. With AUTOBAHN_UPDATE=1 the expected file is rewritten from the report.
Prints the summary table and ends with one line: `N passed, N failed`.
"""
import json
import os
import sys

RANK = {"OK": 3, "NON-STRICT": 2, "INFORMATIONAL": 1, "UNIMPLEMENTED": 1}
GOOD_CLOSE = {"OK", "INFORMATIONAL", "UNIMPLEMENTED"}


def case_key(case):
    return tuple(int(part) for part in case.split("."))


def main():
    report_dir, expected_path = sys.argv[1:3]
    index_path = os.path.join(report_dir, "index.json")
    if not os.path.exists(index_path):
        print("autobahn: no report (wstest did not finish); see %s/wstest.log" % report_dir)
        print("0 passed, 1 failed")
        return 1
    results = {}
    for cases in json.load(open(index_path)).values():
        results.update(cases)

    if os.environ.get("AUTOBAHN_UPDATE") == "1":
        expected = {case: results[case]["behavior"] for case in sorted(results, key=case_key)}
        with open(expected_path, "w") as out:
            json.dump(expected, out, indent=0, sort_keys=False)
            out.write("\n")
        print("autobahn: wrote %d expected results to %s" % (len(expected), expected_path))
    expected = json.load(open(expected_path))

    counts = {}
    problems = []
    for case in sorted(set(expected) | set(results), key=case_key):
        if case not in results:
            problems.append("%s: missing from the report" % case)
            continue
        behavior = results[case]["behavior"]
        close = results[case].get("behaviorClose")
        counts[behavior if behavior in RANK else "FAILED"] = counts.get(behavior if behavior in RANK else "FAILED", 0) + 1
        if behavior not in RANK:
            problems.append("%s: %s" % (case, behavior))
        elif close not in GOOD_CLOSE:
            problems.append("%s: close behaviour %s" % (case, close))
        elif case in expected and RANK[behavior] < RANK.get(expected[case], 0):
            problems.append("%s: %s, expected %s" % (case, behavior, expected[case]))
        elif case not in expected:
            problems.append("%s: not in %s" % (case, expected_path))

    print("| OK | NON-STRICT | INFORMATIONAL | UNIMPLEMENTED | FAILED |")
    print("|---|---|---|---|---|")
    print("| %d | %d | %d | %d | %d |" % tuple(
        counts.get(k, 0) for k in ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")))
    for behavior in ("NON-STRICT", "INFORMATIONAL"):
        cases = sorted((c for c in results if results[c]["behavior"] == behavior), key=case_key)
        if cases:
            print("%s: %s" % (behavior, ", ".join(cases)))
    for problem in problems:
        print("autobahn problem: " + problem)
    print("%d passed, %d failed" % (len(results) - len(problems) if len(problems) <= len(results) else 0, len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
