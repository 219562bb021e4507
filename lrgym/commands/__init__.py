"""One module per ``lrgym`` subcommand (``<name>_command.py``), plus shared flags."""
