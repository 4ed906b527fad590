"""What the public sees: the static site and its charts and map, the open-data export,
the evidence dossier, and the atomic swap that publishes a folder (`swap.py`)."""
