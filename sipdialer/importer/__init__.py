"""CSV import of members (``sipdialer import`` and the API's import): see :mod:`.reader`
for how a file is read and which rows are refused, :mod:`.mapping` for the ``--map``,
:mod:`.dates` for the date formats of an ``expire`` column."""

from __future__ import annotations

from sipdialer.importer.dates import FORMATS, ExpireFormat, guess_format, parse_format
from sipdialer.importer.mapping import (
    DEFAULT_MAPPING,
    ColumnMap,
    Columns,
    MappingError,
    parse_mapping,
)
from sipdialer.importer.reader import (
    ImportBatch,
    ImportedMember,
    ImportResult,
    RowError,
    Source,
    check_delimiter,
    check_encoding,
    iter_members,
    read_members,
)

__all__ = [
    "DEFAULT_MAPPING",
    "FORMATS",
    "ColumnMap",
    "Columns",
    "ExpireFormat",
    "ImportBatch",
    "ImportResult",
    "ImportedMember",
    "MappingError",
    "RowError",
    "Source",
    "check_delimiter",
    "check_encoding",
    "guess_format",
    "iter_members",
    "parse_format",
    "parse_mapping",
    "read_members",
]
