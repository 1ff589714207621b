from cdp_server.cli import main

main()
