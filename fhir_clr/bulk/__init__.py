"""Bulk Data ``$export`` (FHIR Bulk Data Access IG v2): kick-off parameters, persistent jobs, streaming NDJSON
writers and the export runner shared by the HTTP operation and the ``fhir-clr export bulk`` command."""
