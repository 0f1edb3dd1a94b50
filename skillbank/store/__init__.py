"""The registry: versioned, checksummed, pickle-free skills with their data files (replay, rollouts), and the
export archives it reads and writes."""
