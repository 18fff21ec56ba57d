"""The Typer app: one small file per subcommand, options and help only."""
