from bertsecrets_cli.cli.app import main

main()
