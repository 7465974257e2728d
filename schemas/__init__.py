"""JSON Schemas generated from sftdata.records by `sftdata schemas`."""
