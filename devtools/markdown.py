"""Markdown tables for the tools' reports."""


def table(header: tuple | list, rows: list, align: str = "") -> str:
    """A markdown table; `align` has one letter per column, 'l' or 'r' (left when missing). Cells are str()'d,
    with '|' escaped and newlines folded so that a message cannot break the table."""
    rule = ["---:" if align[i : i + 1] == "r" else "---" for i in range(len(header))]
    cells = [[str(c).replace("|", "\\|").replace("\n", " ") for c in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])
