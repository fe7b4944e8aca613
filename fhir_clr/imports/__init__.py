"""File imports: received MIF/RTF/ASF files kept as FHIR resources and applied row by row through the engine."""
