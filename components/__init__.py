"""One ComponentResource per module. Components take their Args; they never read stack config."""
