#!/usr/bin/env python3
"""Puts a bench's summary into bench/README.md between its two markers.

    readme_block.py README SUMMARY BEGIN END

BEGIN and END are the marker lines (e.g. '<!-- rolling:begin -->'); the text
between them is replaced by SUMMARY's. A README without both markers is left
alone (exit 0, a note on stderr): the figures stay in the bench's results.
"""
import os
import sys


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: readme_block.py README SUMMARY BEGIN END")
    readme, summary, begin, end = sys.argv[1:]
    text = open(readme).read()
    new = open(summary).read()
    if begin not in text or end not in text:
        print(f"readme_block.py: {readme} lacks {begin} ... {end}: not updated", file=sys.stderr)
        return
    head = text[:text.index(begin) + len(begin)]
    tail = text[text.index(end):]
    tmp = readme + ".tmp"
    with open(tmp, "w") as f:
        f.write(head + "\n" + new + tail)
    os.replace(tmp, readme)


if __name__ == "__main__":
    main()
