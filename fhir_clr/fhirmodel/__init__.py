"""R4 validation gate: allow-listed types, fhir.resources R4B models and the checks they skip."""
