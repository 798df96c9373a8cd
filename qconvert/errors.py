"""Errors that reach the user as one line (the CLI prints ``str(error)``, exit code ``error.exit_code``)."""


class QConvertError(Exception):
    """A failure the user can act on: the message says what failed, where, and what to do."""

    exit_code = 1


class UsageError(QConvertError):
    """Bad command-line input: unknown target, missing input shape, unreadable path."""

    exit_code = 2


class SourceLoadError(QConvertError):
    """The model file could not be read (missing, truncated, wrong format, unsafe)."""


class ExportError(QConvertError):
    """The source framework could not be turned into the IR."""


class ParityError(QConvertError):
    """The IR or an artifact does not compute what the source computes."""


class PassError(QConvertError):
    """A graph pass failed; the message names the pass and the passes that ran before it."""


class UnsupportedOpError(QConvertError):
    """An emitter has no entry for an op, or cannot do this node's attributes, dtypes or shapes."""

    def __init__(self, op: str, node: str, target: str, reason: str | None = None):
        self.op, self.node, self.target, self.reason = op, node, target, reason
        what = f"op {op} ({reason})" if reason else f"op {op}"
        super().__init__(
            f"{what} (node {node!r}) is not supported by target {target}; "
            f"run `qconvert ops` for the coverage table or choose another target"
        )
