#!/usr/bin/env python3
"""GB/s table (with ratios against ring) from criterion's output of `cargo bench --bench cipher`.

Usage: python3 scripts/cipher_bench_table.py [CRITERION_DIR]
(default: $CARGO_TARGET_DIR/criterion, else target/criterion). Prints Markdown.
"""
import json, os, sys, pathlib

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion"))
rows = {}
for bench in root.rglob("new/benchmark.json"):
    b = json.loads(bench.read_text())
    est = json.loads((bench.parent / "estimates.json").read_text())
    group, func = b["group_id"], b["function_id"] + (("/" + b["value_str"]) if b.get("value_str") else "")
    if not group.startswith(("seal/", "open/")):
        continue
    nbytes = b["throughput"]["Bytes"]
    ns = est["mean"]["point_estimate"]
    rows.setdefault(group, {})[func] = nbytes / ns  # bytes per ns = GB/s

def order(g):
    op, size = g.split("/")
    units = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20}
    for u in ("KiB", "MiB", "B"):
        if size.endswith(u):
            return (op != "seal", int(size[: -len(u)]) * units[u])
    return (op != "seal", 0)

print("| group | implementation | GB/s | vs ring |")
print("| --- | --- | ---: | ---: |")
for g in sorted(rows, key=order):
    ring = rows[g].get("ring")
    for f, v in sorted(rows[g].items(), key=lambda kv: -kv[1]):
        ratio = f"{v / ring:.2f}x" if ring else "-"
        print(f"| {g} | {f} | {v:.2f} | {ratio} |")
