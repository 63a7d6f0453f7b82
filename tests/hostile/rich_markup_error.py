"""Raises an error whose text is rich markup and terminal escape codes: broken markup ('[/red]')
once made `aar eval` print a traceback instead of its one-line error, valid markup and escape
codes restyled or retitled the terminal. Contained: an idea's words are data, shown literally
without escape sequences (test_cli_eval checks the printed line)."""

EXPECT = "error"
MATCH = r"^ValueError: \[/red\]\[bold red\]PWNED\[/\]"


def run(ctx):
    raise ValueError("[/red][bold red]PWNED[/] \x1b[2J\x1b]0;owned\x07\x1b[31mred\x1b[0m done")
