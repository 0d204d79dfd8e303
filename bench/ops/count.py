#!/usr/bin/env python3
"""Reads an `strace -f -e trace=%process` log of a node's sshd processes:
prints the processes started (every pid in the log but the attached ones)
and, on a second line, the commands among them (the program each new pid
last exec'd, leaving out sshd, shells, sudo, setsid, sftp-server, sleep of
the file session and the login's PAM motd scripts), as "N name xC, ...".
Split calls (<unfinished ...> / <... resumed>) count once."""
import re
import sys

log, attached = sys.argv[1], set(sys.argv[2:])
INFRA = {"sshd", "sh", "dash", "bash", "sudo", "setsid", "sftp-server", "run-parts", "env", "uname",
         "10-uname"}
prog = {}
pids = []
for line in open(log, errors="replace"):
    m = re.match(r"(\d+)\s+(.*)", line)
    if not m:
        continue
    pid, rest = m.groups()
    if pid not in attached and pid not in prog:
        prog[pid] = None
        pids.append(pid)
    e = re.match(r'execve\("([^"]+)"', rest)
    if e and pid in prog:
        prog[pid] = e.group(1).rsplit("/", 1)[-1]
cmds = {}
for pid in pids:
    p = prog[pid]
    if p and p not in INFRA:
        cmds[p] = cmds.get(p, 0) + 1
print(len(pids))
print(sum(cmds.values()), ", ".join("%s x%d" % kv for kv in sorted(cmds.items())))
