"""Flat files (MIF, ASF, RTF) <-> FHIR through the declarative specs of ``mappings/``.

``spec`` loads and checks specs, ``readers`` streams CSV/pipe/tab/XLSX rows, ``headers`` matches header rows,
``values`` parses and formats cells, ``rows`` turns a raw row into typed values, ``fhir_map`` projects values
to FHIR fragments and back, ``writers`` writes files. Pure functions: no store, no server.
"""
