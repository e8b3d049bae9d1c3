"""Sum up schemathesis JSON reports (one per role) and decide the run.

Fails on any check failure (a server error, or a response that breaks the documented
schema) and on any error that reached the network layer (the relay refused, reset or
timed out a connection). Errors raised inside the generator itself (Hypothesis internals)
are printed but do not fail the run: they say nothing about the relay.
"""

import json
import sys

NETWORK = ("connection", "timed out", "timeout", "network", "reset by peer", "refused")

failed = False
totals = {"generated": 0, "failures": 0, "network_errors": 0, "tool_errors": 0}
for path in sys.argv[1:]:
    with open(path) as f:
        report = json.load(f)
    role = path.rsplit("/", 1)[-1].removesuffix(".json")
    generated = report["test_cases"]["generated"]
    failures = report["failures"]
    network, tool = [], []
    for error in report["errors"]:
        text = json.dumps(error).lower()
        (network if any(w in text for w in NETWORK) else tool).append(error)
    print(
        f"{role:>10}: {generated} cases, {report['operations']['tested']} operations, "
        f"{len(failures)} failures, {len(network)} network errors, {len(tool)} generator errors"
    )
    for failure in failures:
        print("   FAILURE:", json.dumps(failure)[:600])
    for error in network:
        print("   NETWORK ERROR:", json.dumps(error)[:600])
    for error in tool:
        print("   (generator error, ignored):", json.dumps(error)[:200])
    totals["generated"] += generated
    totals["failures"] += len(failures)
    totals["network_errors"] += len(network)
    totals["tool_errors"] += len(tool)
    if failures or network or generated == 0:
        failed = True

print(
    f"     total: {totals['generated']} cases, {totals['failures']} failures, "
    f"{totals['network_errors']} network errors, {totals['tool_errors']} generator errors"
)
sys.exit(1 if failed else 0)
