from tcwebhook.cli.main import main

main()
