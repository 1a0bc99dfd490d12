"""E-mail (.eml) files: the body's elements under the subject as their title."""

from __future__ import annotations

import io
from pathlib import Path

from rag.documents import Element
from rag.parsing.decoding import _MAX_CONTROL_SHARE, _control_share
from rag.parsing.elements import _to_elements
from rag.parsing.failures import _binary_error


def _parse_eml(path: Path, data: bytes) -> list[Element]:
    from unstructured.partition.email import partition_email

    # An e-mail is text (its parts are MIME-encoded); random bytes named .eml would otherwise
    # come out as a "body" of mojibake.
    if _control_share(data) > _MAX_CONTROL_SHARE:
        raise _binary_error(path)
    raw = partition_email(file=io.BytesIO(data), process_attachments=False, languages=[""])
    elements = _to_elements(raw)
    # The subject is the email's title: make it the first element and the body's section.
    subject = next((e.metadata.subject for e in raw if getattr(e.metadata, "subject", None)), None)
    if subject and subject.strip():
        subject = subject.strip()
        for element in elements:
            element.section = element.section or subject
        elements.insert(0, Element(text=subject, kind="Title", page=None, section=subject))
    return elements
