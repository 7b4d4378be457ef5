"""A plugin that fails at import: the gateway must log it and carry on."""

msg = "this plugin is broken on purpose"
raise ImportError(msg)
