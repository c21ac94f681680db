"""The dependency vulnerability early-warning application: sources -> store -> cascade -> dependencies -> triage."""
