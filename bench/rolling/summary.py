#!/usr/bin/env python3
"""The bench/rolling tables: medians (min-max) per way from the raw rows.

    summary.py etcd RAW OUT RUNS     (run.sh: writes, failed writes, term growth)
    summary.py kcm  RAW OUT RUNS     (kcm.sh: Lease moves per Lease duration)
"""
import csv
import statistics
import sys

WAYS = ("leader-aware", "inventory", "systemctl")


def cell(vals, fmt):
    vals = sorted(float(v) for v in vals)
    return f"{fmt.format(statistics.median(vals))} ({fmt.format(vals[0])}-{fmt.format(vals[-1])})"


def etcd(rows, runs):
    out = ["| way | writes during the roll | failed writes | longest write gap | raft term growth | roll time |",
           "|---|---|---|---|---|---|"]
    names = {"leader-aware": "kcmrun, leader-aware (default)", "inventory": "kcmrun, inventory order (`leader = false`)",
             "systemctl": "`systemctl restart etcd` loop (the guide)"}
    for way in WAYS:
        r = [x for x in rows if x["way"] == way]
        if not r:
            continue
        out.append(f"| {names[way]} | {cell([x['writes'] for x in r], '{:.0f}')} | {cell([x['failed'] for x in r], '{:.0f}')} | "
                   f"{cell([x['gap_s'] for x in r], '{:.2f}')} s | {cell([x['term_growth'] for x in r], '{:.0f}')} | "
                   f"{cell([x['roll_s'] for x in r], '{:.1f}')} s |")
    out.append("")
    out.append(f"Medians (min-max) of {runs} rounds each, interleaved; raw rows in `bench/rolling/results/raw.tsv`.")
    return out


def kcm(rows, runs):
    out = ["| lease | way | Lease moves | longest time without a renewal | roll time | a leader renewing, after the roll |",
           "|---|---|---|---|---|---|"]
    names = {"leader-aware": "kcmrun, leader-aware (default)", "inventory": "kcmrun, inventory order (`-e rolling_order=inventory`)",
             "systemctl": "`systemctl restart kube-controller-manager` loop (the guide)"}
    for lease in sorted({x["lease_s"] for x in rows}, key=lambda v: -int(v)):
        for way in WAYS:
            r = [x for x in rows if x["way"] == way and x["lease_s"] == lease]
            if not r:
                continue
            out.append(f"| {lease} s | {names[way]} | {cell([x['moves'] for x in r], '{:.0f}')} | "
                       f"{cell([x['renew_gap_s'] for x in r], '{:.1f}')} s | "
                       f"{cell([x['roll_s'] for x in r], '{:.1f}')} s | {cell([x['leader_back_s'] for x in r], '{:.1f}')} s |")
    out.append("")
    out.append(f"Medians (min-max) of {runs} rounds each, the three ways interleaved; raw rows in `bench/rolling/results/raw-kcm.tsv`.")
    return out


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("etcd", "kcm"):
        sys.exit("usage: summary.py etcd|kcm RAW OUT RUNS")
    kind, raw, dest, runs = sys.argv[1:]
    rows = list(csv.DictReader(open(raw), delimiter="\t"))
    out = (etcd if kind == "etcd" else kcm)(rows, runs)
    open(dest, "w").write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
