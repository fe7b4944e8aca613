"""Member letters: the Notice of Action letter rendered to PDF with its enclosures, collected in daily print
batches the plan downloads and marks mailed (see README "Member letters")."""
