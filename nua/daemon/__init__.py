"""The process layer: daemonisation, signals, sd_notify, the wiring of the actor tree and `nua-orchestrator`."""
