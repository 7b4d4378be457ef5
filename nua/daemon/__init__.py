"""The process layer: daemonisation, the pid lock, signals, and the wiring of the actor tree."""
