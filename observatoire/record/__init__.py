"""What the robot records: probes in the database, evidence files, rollups, retention,
slot releases and page fingerprints. The tables themselves are in `observatoire.db`."""
