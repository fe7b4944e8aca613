"""Notice delivery: the server composes the CLR notices its obligations ask for and delivers them (secure email,
FHIR subscription, monthly digest; Member letters are queued for the print batch). See ``worker``."""
