"""FHIR semantics without HTTP: the one write path every caller uses."""
