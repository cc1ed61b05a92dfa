"""Domain errors. Every user-facing failure derives from ``EscrutinioError``.

The worker tells "bad input, do not retry" (``BadInput`` and subclasses) from
infrastructure errors (anything else) by type, so raise the most specific one.
"""


class EscrutinioError(Exception):
    """Base of every error the CLI prints as one line (exit status 2)."""


class BadInput(EscrutinioError):
    """Input that will never succeed however often it is retried: say what is wrong."""


class UnreadableScan(BadInput):
    """The file is not a decodable image, too large, blank, or cut off."""


class FormMismatch(BadInput):
    """The image is not the expected form (wrong template, upside down, unregistrable)."""


class InvalidTemplate(BadInput):
    """A form template file breaks the schema; the message names the field."""
