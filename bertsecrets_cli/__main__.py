from bertsecrets_cli.entry import main

main()
