"""The `tvmffi-wheel` command: its parser (`cli`) and one module per subcommand that is
not the repair pipeline itself (`check`, `compat`, `init`)."""
