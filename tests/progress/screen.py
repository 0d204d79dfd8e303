# Renders a `script` transcript as a terminal would (the few sequences
# kcmrun writes: CR, LF, cursor up, erase line, colours) -> the final screen.
import re
import sys

rows, r, c = [""], 0, 0
data = open(sys.argv[1], encoding="utf-8", errors="replace", newline="").read()
data = data.split("\n", 1)[1] if data.startswith("Script started") else data
for tok in re.findall(r"\x1b\[[0-9;]*[A-Za-z]|\r|\n|[^\x1b\r\n]+", data):
    if tok == "\r":
        c = 0
    elif tok == "\n":
        r += 1
        if r == len(rows):
            rows.append("")
    elif tok == "\x1b[A":
        r = max(0, r - 1)
    elif tok == "\x1b[2K":
        rows[r] = ""
    elif tok.startswith("\x1b["):
        pass        # colours
    else:
        line = rows[r].ljust(c)
        rows[r] = line[:c] + tok + line[c + len(tok):]
        c += len(tok)
print("\n".join(l.rstrip() for l in rows if not l.startswith("Script done")).rstrip())
