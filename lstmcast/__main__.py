from lstmcast.cli.app import main

main()
