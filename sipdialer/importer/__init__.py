"""CSV import of members (``sipdialer import`` and the API's import): see :mod:`.reader`
for how a file is read and which rows are refused, :mod:`.mapping` for the ``--map``."""

from __future__ import annotations

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
    "ColumnMap",
    "Columns",
    "ImportBatch",
    "ImportResult",
    "ImportedMember",
    "MappingError",
    "RowError",
    "Source",
    "check_delimiter",
    "check_encoding",
    "iter_members",
    "parse_mapping",
    "read_members",
]
