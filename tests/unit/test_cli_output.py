"""`phoneagent calls` prints what callers said: terminal control sequences in it are shown as `?`,
never sent to the terminal (a transcript cannot clear the screen, move the cursor or retitle it)."""

from __future__ import annotations

import contextlib
import io

from phoneagent.cli_calls import Printable, printable


def test_control_characters_are_shown_not_sent() -> None:
    said = "my name is \x1b]0;pwned\x07Bob\x1b[2J\rand\x08\x7f\x9b31m ok"
    shown = printable(said)
    assert not any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in shown if ch not in "\n\t")
    assert shown.startswith("my name is ?]0;pwned?Bob?[2J?and")
    assert printable("line one\n\ttwo, café, 4 155 550") == "line one\n\ttwo, café, 4 155 550"


def test_everything_the_command_prints_goes_through_it() -> None:
    buf = io.StringIO()
    with contextlib.redirect_stdout(Printable(buf)):
        print("turn 1  caller  \x1b[31mred\x1b[0m")
    assert buf.getvalue() == "turn 1  caller  ?[31mred?[0m\n"
