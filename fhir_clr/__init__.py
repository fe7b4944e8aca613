"""fhir-clr: a FHIR R4 server for California Medi-Cal Closed-Loop Referrals."""

__version__ = "0.1.0"
