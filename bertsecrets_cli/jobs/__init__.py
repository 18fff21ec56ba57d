"""The library function behind each subcommand: plain, typed, callable without the CLI."""
