from cdp_server.cli import main

main(prog_name="cdp")
