"""Files in any supported format <-> the canonical frame: the one read path and the
one write path every command, ``sftdata run`` and the trainer use.

Modules (each imports only those listed before it):

- ``reference``: the record-by-record conversion (``sftdata.formats`` row by row), the
  definition of every result and every reject;
- ``jsontext``, ``shapes``, ``decode``: JSON text -> typed polars columns, with the proof
  of which rows were read exactly; ``ids``: record ids for a whole frame;
- ``build``: decoded columns -> canonical rows; ``table``: Parquet/CSV batches -> the
  same decoded columns;
- ``emit``: canonical rows -> output rows of each format;
- ``read`` (``BatchReader``, ``read_canonical``) and ``write`` (``RecordWriter``,
  ``write_records``): the two paths, batch by batch, vectorised with the reference as
  the fallback for rows the vectorised code cannot prove; ``rejectfile``
  (``RejectsWriter``): the rejects file, written as rejects come;
- ``fast``: the direct Alpaca JSONL -> ShareGPT/OpenAI JSONL route; ``files``:
  ``convert_file``, which takes it or streams read -> write.
"""

from sftdata.convert.files import Converted, convert_file
from sftdata.convert.read import Batch, BatchReader, ReadResult, read_batches, read_canonical, reference_read
from sftdata.convert.reference import canonical_record, records_to_rows, rows_to_records
from sftdata.convert.rejectfile import RejectsWriter
from sftdata.convert.write import RecordWriter, write_records

__all__ = ["Batch", "BatchReader", "Converted", "ReadResult", "RecordWriter", "RejectsWriter", "canonical_record",
           "convert_file", "read_batches", "read_canonical", "records_to_rows", "reference_read",
           "rows_to_records", "write_records"]
